"""Log lines an operator can search: logfmt (``key="value"``) or JSON lines on stderr.

Under systemd (``$JOURNAL_STREAM`` names our stderr) the journal adds the time itself, so lines
carry none, and each starts with its syslog priority (``<3>`` error ... ``<7>`` debug) so that
``journalctl -p warning`` works (sd-daemon(3)). Fields given with ``extra={"source": name}`` are
written as their own keys; by convention a line about a source, notice or resident carries its
id (``source=``, ``notice_id=``, ``subscriber_id=``), never a place or an endpoint.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# syslog(3) priorities by logging level
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
            logging.CRITICAL: 2}
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message",
                                                                                 "asctime"}
_BARE = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (unknown levels round down to the nearest)."""
    known = [lvl for lvl in sorted(PRIORITY) if lvl <= levelno]
    return PRIORITY[known[-1]] if known else 7


def logfmt_value(value: object) -> str:
    """One logfmt value: bare when safe, else double-quoted with \\ " and newlines escaped."""
    text = str(value)
    if _BARE.match(text):
        return text
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def under_journald(stream: TextIO) -> bool:
    """True when ``stream`` is the journal stream systemd connected ($JOURNAL_STREAM=dev:ino)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{st.st_dev}:{st.st_ino}"


class Formatter(logging.Formatter):
    """logfmt or JSON lines; ``journald`` drops the time and adds the <N> priority prefix."""

    def __init__(self, fmt: str = "logfmt", *, journald: bool = False):
        super().__init__()
        if fmt not in ("logfmt", "json"):
            raise ValueError(f"log format must be logfmt or json, not {fmt!r}")
        self.fmt = fmt
        self.journald = journald

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not self.journald:
            at = datetime.fromtimestamp(record.created, UTC)
            out["ts"] = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        out["level"] = record.levelname.lower()
        out["logger"] = record.name
        out["msg"] = record.getMessage()
        out.update({k: v for k, v in vars(record).items()
                    if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return out

    def format(self, record: logging.LogRecord) -> str:
        fields = self.fields(record)
        if self.fmt == "json":
            line = json.dumps(fields, ensure_ascii=False, default=str)
        else:
            line = " ".join(f"{k}={logfmt_value(v)}" for k, v in fields.items())
        return f"<{priority(record.levelno)}>{line}" if self.journald else line


class Handler(logging.StreamHandler[TextIO]):
    """The stderr handler setup() installs (so a second call can find and replace it)."""


def setup(*, verbose: bool = False, fmt: str | None = None, level: str | None = None,
          stream: TextIO | None = None) -> None:
    """Send the root logger to stderr in ``fmt`` (default logfmt). Like logging.basicConfig,
    this leaves a root logger that someone else configured (a test runner) alone; our own
    handler from an earlier call is replaced (the [log] table is read after the command line)."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, Handler)]
    if len(ours) != len(root.handlers):
        return
    for old in ours:
        root.removeHandler(old)
    stream = stream or sys.stderr
    handler = Handler(stream)
    handler.setFormatter(Formatter(fmt or "logfmt", journald=under_journald(stream)))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else getattr(logging, (level or "info").upper()))
    # one line per job run drowns the daemon's own log; failures still show as warnings
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
