"""Crash points for the fault tests: ``QUAKEALERT_KILL_AT=<name>`` SIGKILLs the process there.

A SIGKILL sent from outside cannot hit "after the batch is committed, before the pipeline ran"
reliably; these points make the awkward moments exact. Unset (always, outside tests) they cost one
environment lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "QUAKEALERT_KILL_AT"
POINTS = ("ingested", "decided")  # batch stored + work queued; a notice + its outbox committed


def kill_point(name: str) -> None:
    """Die here, as a power cut or the OOM killer would, when the environment asks for it."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
