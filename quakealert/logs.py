"""Log lines an operator can search: logfmt (``key="value"``) or JSON lines on stderr.

Under systemd (``$JOURNAL_STREAM`` names our stderr) the journal adds the time itself, so lines
carry none, and each starts with its syslog priority (``<3>`` error ... ``<7>`` debug) so that
``journalctl -p warning`` works (sd-daemon(3)). Fields given with ``extra={"source": name}`` are
written as their own keys; by convention a line about a source, notice or resident carries its
id (``source=``, ``notice_id=``, ``subscriber_id=``), never a place or an endpoint: a client's
address is logged as :func:`client_ref`, error texts that may name a host go through
:func:`scrub`, and an exception whose text may hold a push endpoint as :func:`trace_only`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, TextIO

# syslog(3) priorities by logging level
PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
            logging.CRITICAL: 2}
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message",
                                                                                 "asctime"}
_BARE = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")


# Client addresses are personal data (docs/security.md): a log line carries a keyed hash
# instead, the same for one client within one run (repeated failures from one client can be
# seen), unlinkable across restarts, and not reversible by hashing all 2**32 IPv4 addresses.
_CLIENT_KEY = secrets.token_bytes(16)
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()\[\]]+")
_HOST = re.compile(r"(?i)\b(host)(\s*=\s*|\s+)['\"]?\[?[A-Za-z0-9.:-]*[A-Za-z0-9]\]?['\"]?")
_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
_IPV6 = re.compile(r"\[?\b(?:[0-9A-Fa-f]{1,4}:){5,7}[0-9A-Fa-f]{1,4}\b\]?(?::\d+)?"
                   r"|\[?[0-9A-Fa-f:]*::[0-9A-Fa-f:]*\]?(?::\d+)?")
_NAME_PORT = re.compile(r"\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+:\d+\b")


def client_ref(remote: str | None) -> str:
    """What a log line says about a client address: ``c-`` and 10 hex digits of a keyed hash."""
    digest = hashlib.blake2s((remote or "").encode(), key=_CLIENT_KEY, digest_size=5)
    return "c-" + digest.hexdigest()


def scrub(text: str) -> str:
    """An error text with URLs, addresses and host names cut out (aiohttp's "Cannot connect to
    host www.example.org:443" names the upstream; our line names the source instead)."""
    text = _URL.sub("<url>", text)
    text = _HOST.sub(lambda m: f"{m.group(1)}{m.group(2)}<host>", text)
    text = _NAME_PORT.sub("<host>", text)
    text = _IPV4.sub("<ip>", text)
    return _IPV6.sub("<ip>", text)


def trace_only(err: BaseException) -> str:
    """An exception's traceback and type without its message (which may hold a resident's push
    endpoint or webhook URL): where the bug is, not whom it concerned."""
    frames = "".join(traceback.format_tb(err.__traceback__))
    return f"{frames}{type(err).__module__}.{type(err).__qualname__}"


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
