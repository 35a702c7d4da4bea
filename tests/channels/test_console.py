"""The console channel prints every language and labels drills."""

from __future__ import annotations

import io

from pushkit import NOW, make_notice

from quakealert.channels.base import Recipient
from quakealert.channels.console import ConsoleChannel


async def test_prints_each_language():
    """Titles and bodies of the resident's languages appear; a real notice is not labelled."""
    out = io.StringIO()
    r = Recipient(subscriber_id=1, channel="console", target="stdout", languages=("zh", "bo", "en"))
    res = await ConsoleChannel(out).deliver(make_notice(), r, None, now=NOW)  # type: ignore[arg-type]
    text = out.getvalue()
    assert res.ok
    for s in ("墨竹工卡县4.5级地震", "ས་ཡོམ།", "Stay calm and move to open ground.", "[bo]"):
        assert s in text
    assert "EXERCISE" not in text


async def test_exercise_label():
    """A drill is marked EXERCISE before and after the text."""
    out = io.StringIO()
    r = Recipient(subscriber_id=1, channel="console", target="stdout", languages=("en",))
    await ConsoleChannel(out).deliver(make_notice(exercise=True), r, None, now=NOW)  # type: ignore[arg-type]
    text = out.getvalue()
    assert text.count("EXERCISE") >= 2 and "墨竹工卡县" not in text
