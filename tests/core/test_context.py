"""The CENC regional context line (§1.7)."""

import dataclasses
from datetime import timedelta

from seqdata import cenc_news

from quakealert.core.context import regional_context


def test_largest_and_count():
    """18 prior M3+ events, all smaller: "this was the largest" with the count."""
    m45 = cenc_news("maizhokunggar-2024")[1]
    prior = [dataclasses.replace(m45, id=f"bg{i}", origin_at=m45.origin_at - timedelta(days=50 * i + 1),
                                 magnitude=3.0 + 0.05 * i,
                                 contributors=(dataclasses.replace(m45.contributors[0],
                                                                   magnitude=3.0 + 0.05 * i),))
             for i in range(18)]
    old = dataclasses.replace(prior[0], id="old", origin_at=m45.origin_at - timedelta(days=6 * 366))
    c = regional_context(m45, 4.5, prior + [old, m45], "cenc")
    assert c.count == 18 and c.rank == 1
    assert c.zh.startswith("震中周边200公里内近5年来发生3级以上地震共18次")
    assert "largest" in c.en


def test_rank_when_not_largest():
    """A larger prior event is named, and the rank given."""
    a, b, c = cenc_news("maizhokunggar-2024")
    ctx = regional_context(c, 4.0, [a, b], "cenc")
    assert ctx.count == 2 and ctx.rank == 3
    assert ctx.largest_magnitude == 4.5 and "4.5级" in ctx.zh and "3rd" in ctx.en


def test_far_and_other_agency_events_do_not_count():
    """Events beyond 200 km or without the agency's magnitude are left out."""
    a, b, _ = cenc_news("maizhokunggar-2024")
    far = dataclasses.replace(a, id="far", latitude=a.latitude + 2.0)
    other = dataclasses.replace(a, id="other", contributors=(
        dataclasses.replace(a.contributors[0], source="usgs"),))
    assert regional_context(b, 4.5, [far, other], "cenc").count == 0


def test_first_event_in_the_region_is_its_own_largest() -> None:
    """A lone M4.5 with no earlier M≥3 within 200 km: the line counts the earlier events, 0."""
    from datetime import UTC, datetime

    from quakealert.core.context import regional_context
    from quakealert.model import Contributor, Event

    at = datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
    c = Contributor("cenc", "x", at, 29.85, 92.25, 10.0, 4.5, "M", "reviewed")
    e = Event("qa1", at, 29.85, 92.25, 10.0, 4.5, "M", "reviewed", "cenc", (c,))
    ctx = regional_context(e, 4.5, [e], "cenc")
    assert ctx.count == 0
    assert ctx.zh == "震中周边200公里内近5年来发生3级以上地震共0次。"
    assert ctx.en.startswith("Within 200 km of the epicentre, 0 earthquakes")


def test_english_line_says_one_earthquake():
    """One earlier event: '1 earthquake of M3 or greater', not '1 earthquakes'."""
    a, b, _ = cenc_news("maizhokunggar-2024")
    ctx = regional_context(b, 4.5, [a], "cenc")
    assert ctx.count == 1 and "1 earthquake of M3" in ctx.en
