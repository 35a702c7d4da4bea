"""The demo resident: prints each language's title and body to stdout."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO

from aiohttp import ClientSession

from quakealert.channels.base import DeliveryResult, Recipient
from quakealert.model import Notice

RULE = "=" * 72


def format_notice(notice: Notice, languages: tuple[str, ...] = ()) -> str:
    """The notice as a block of text, one section per language, EXERCISE-labelled for drills."""
    msgs = [m for lang in languages if (m := notice.message(lang)) is not None]
    msgs = msgs or list(notice.messages)
    head = f"{notice.msg_type.upper()} {notice.kind} notice={notice.id} sequence={notice.sequence_id}"
    lines = [RULE]
    if notice.exercise:
        lines.append("*** EXERCISE — 演练 — this is a drill, not a real earthquake ***")
    lines.append(head)
    for m in msgs:
        lines += ["", f"[{m.lang}] {m.title}", m.body]
    if notice.url:
        lines += ["", notice.url]
    if notice.exercise:
        lines.append("*** EXERCISE ***")
    lines.append(RULE)
    return "\n".join(lines) + "\n"


class ConsoleChannel:
    """Writes notices to a text stream (stdout by default)."""

    name = "console"

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream

    def __repr__(self) -> str:
        return "ConsoleChannel()"

    async def deliver(
        self, notice: Notice, recipient: Recipient, session: ClientSession, *, now: datetime
    ) -> DeliveryResult:
        stream = self.stream or sys.stdout
        stream.write(format_notice(notice, recipient.languages))
        stream.flush()
        return DeliveryResult(notice_id=notice.id, channel=self.name, target=recipient.target,
                              ok=True)
