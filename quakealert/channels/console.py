"""The demo resident: prints what each language's push shows (title and body) to stdout."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO

from aiohttp import ClientSession

from quakealert.channels.base import DeliveryResult, Recipient
from quakealert.core.render import push_texts
from quakealert.model import Notice

RULE = "=" * 72


def format_notice(notice: Notice, languages: tuple[str, ...] = ()) -> str:
    """The notice as a block of text, one section per language, EXERCISE-labelled for drills."""
    msgs = [m for lang in languages if (m := notice.message(lang)) is not None]
    msgs = msgs or list(notice.messages)
    head = f"{notice.msg_type.upper()} {notice.kind} notice={notice.id} sequence={notice.sequence_id}"
    lines = [RULE]
    lines.append(head)
    # Each language on its own: the drill marker is in every title in that title's language, and
    # a bo section holds only Tibetan (issue 8 §3).
    # What the resident's phone shows: the phone-sized title and body of each chosen language
    # (the full notice is one tap away, at the link below).
    for m in msgs:
        title, body = push_texts(m, exercise=notice.exercise)
        lines += ["", f"[{m.lang}] {title}", body]
    if notice.url:
        lines += ["", notice.url]
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
