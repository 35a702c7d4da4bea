"""The CENC regional context line (§1.7): the quake itself is counted, the largest before it named."""

import dataclasses
from datetime import UTC, datetime, timedelta

from seqdata import cenc_lhasa, cenc_lhasa_event, cenc_news

from quakealert.core.context import regional_context
from quakealert.model import Contributor, Event


def test_real_list_m45_counts_eleven_with_itself() -> None:
    """On the real CENC list the M4.5 of 2024-11-07 BJT reads 共11次, the largest before it
    the M4.1 of 2024-10-31 (data/README.md counts 10 before it, 11 with it)."""
    m45 = cenc_lhasa_event("2024-11-06T20:19:53")
    c = regional_context(m45, 4.5, cenc_lhasa(), "cenc")
    assert c.count == 11 and c.prior_count == 10 and c.is_largest
    assert c.largest.event_id == m45.id
    assert c.largest_before is not None
    assert c.largest_before.magnitude == 4.1
    assert c.largest_before.origin_at == datetime(2024, 10, 31, 1, 32, 38, tzinfo=UTC)
    # the notices' wording (messages/glossary s.context_this_largest + s.context_before)
    assert c.zh == ("震中周边200千米内近5年来发生3级以上地震共11次，本次地震是其中最大的一次。"
                    "此前最大为2024年10月31日4.1级地震。")
    assert c.en == ("Within 200 km of the epicentre there have been 11 earthquakes of M3 or "
                    "larger in the past 5 years; this is the largest of them. The largest before "
                    "it was M4.1 on 31 Oct 2024.")


def test_real_list_later_quake_is_ranked_below_the_m45() -> None:
    """The M4.4 of 2024-11-18 counts the M4.5 before it: it is the 2nd largest, not the largest."""
    m44 = next(e for e in cenc_lhasa() if e.magnitude == 4.4
               and e.origin_at.date().isoformat() == "2024-11-18")
    c = regional_context(m44, 4.4, cenc_lhasa(), "cenc")
    assert c.rank == 2 and not c.is_largest
    assert c.largest.magnitude == 4.5 and c.largest_before == c.largest
    assert c.count == c.prior_count + 1 and c.count > 11
    assert c.zh.endswith("，其中最大为2024年11月7日4.5级地震。")


def test_largest_and_count():
    """18 earlier M3+ events, all smaller, plus the event itself: 19, "this was the largest"."""
    m45 = cenc_news("maizhokunggar-2024")[1]
    prior = [dataclasses.replace(m45, id=f"bg{i}", origin_at=m45.origin_at - timedelta(days=50 * i + 1),
                                 magnitude=3.0 + 0.05 * i,
                                 contributors=(dataclasses.replace(m45.contributors[0],
                                                                   magnitude=3.0 + 0.05 * i),))
             for i in range(18)]
    old = dataclasses.replace(prior[0], id="old", origin_at=m45.origin_at - timedelta(days=6 * 366))
    c = regional_context(m45, 4.5, prior + [old, m45], "cenc")
    assert c.count == 19 and c.rank == 1
    assert c.zh.startswith("震中周边200千米内近5年来发生3级以上地震共19次")
    assert c.largest_before is not None and c.largest_before.magnitude == 3.85
    assert "largest" in c.en


def test_rank_when_not_largest():
    """A larger earlier event is named, and the rank given."""
    a, b, c = cenc_news("maizhokunggar-2024")
    ctx = regional_context(c, 4.0, [a, b], "cenc")
    assert ctx.count == 3 and ctx.rank == 3
    assert ctx.largest.magnitude == 4.5 and "4.5级" in ctx.zh and "the largest was M4.5" in ctx.en


def test_later_events_are_not_counted():
    """Quakes after the event are outside its window: the M4.1 counts only itself."""
    a, b, c = cenc_news("maizhokunggar-2024")
    ctx = regional_context(a, 4.1, [a, b, c], "cenc")
    assert ctx.count == 1 and ctx.largest_before is None and ctx.is_largest


def test_far_and_other_agency_events_do_not_count():
    """Events beyond 200 km or without the agency's magnitude are left out."""
    a, b, _ = cenc_news("maizhokunggar-2024")
    far = dataclasses.replace(a, id="far", latitude=a.latitude + 2.0)
    other = dataclasses.replace(a, id="other", contributors=(
        dataclasses.replace(a.contributors[0], source="usgs"),))
    assert regional_context(b, 4.5, [far, other], "cenc").count == 1


def test_first_event_in_the_region_counts_itself() -> None:
    """A lone M4.5 with no earlier M≥3 within 200 km: 共1次, and it is that one."""
    at = datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
    c = Contributor("cenc", "x", at, 29.85, 92.25, 10.0, 4.5, "M", "reviewed")
    e = Event("qa1", at, 29.85, 92.25, 10.0, 4.5, "M", "reviewed", "cenc", (c,))
    ctx = regional_context(e, 4.5, [e], "cenc")
    assert ctx.count == 1 and ctx.largest_before is None
    assert ctx.zh == "震中周边200千米内近5年来发生3级以上地震共1次，即本次地震。"
    assert ctx.en == ("Within 200 km of the epicentre this is the only earthquake of M3 or larger "
                      "in the past 5 years.")


def test_english_line_counts_in_plural():
    """Two counted: '2 earthquakes of M3 or greater', this one included."""
    a, b, _ = cenc_news("maizhokunggar-2024")
    ctx = regional_context(b, 4.5, [a], "cenc")
    assert ctx.count == 2 and "2 earthquakes of M3" in ctx.en and "largest of them" in ctx.en
