"""The console channel prints every language and labels drills."""

from __future__ import annotations

import io

from pushkit import NOW, make_notice

from quakealert.channels.base import Recipient
from quakealert.channels.console import ConsoleChannel
from quakealert.core.render import has_cjk


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
    """A drill's title is marked once in its own language; an en-only resident sees no Chinese."""
    out = io.StringIO()
    r = Recipient(subscriber_id=1, channel="console", target="stdout", languages=("en",))
    await ConsoleChannel(out).deliver(make_notice(exercise=True), r, None, now=NOW)  # type: ignore[arg-type]
    text = out.getvalue()
    assert text.count("EXERCISE") == 1 and "墨竹工卡县" not in text and "演练" not in text
    bo = io.StringIO()
    r_bo = Recipient(subscriber_id=2, channel="console", target="stdout", languages=("bo",))
    await ConsoleChannel(bo).deliver(make_notice(exercise=True), r_bo, None, now=NOW)  # type: ignore[arg-type]
    assert "༼ལག་ལེན་ཚོད་ལྟ༽" in bo.getvalue() and not has_cjk(bo.getvalue())
