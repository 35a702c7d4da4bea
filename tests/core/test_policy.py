"""Notification policy: thread per (subscriber, sequence), reasons for every decision."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from quakealert.core.intensity import epicentral_km, predict_intensity
from quakealert.core.policy import (
    Decision,
    EventView,
    Folded,
    PolicyInput,
    PolicyParams,
    SubscriberView,
    ThreadState,
    advance,
    below_threshold_words,
    decide,
    felt_words,
    in_quiet_hours,
    plan,
)
from quakealert.errors import ConfigError

LHASA = (29.65, 91.13)
CHENGDU = (30.66, 104.07)
# (origin, lat, lon, M, sequence type after this event) - CENC parameters, DESIGN.md
SCENARIO = [
    ("e41", datetime(2024, 10, 31, 1, 32, tzinfo=UTC), 29.85, 92.25, 4.1, "undetermined"),
    ("e45", datetime(2024, 11, 6, 20, 19, tzinfo=UTC), 29.85, 92.25, 4.5, "swarm"),
    ("e40", datetime(2024, 11, 8, 5, 0, tzinfo=UTC), 29.81, 92.26, 4.0, "swarm"),
]
PARAMS = PolicyParams()
DAGZE = (29.67315, 91.34278)  # Dagze District seat, Lhasa (messages/places.toml)
# the real M4.4 and M4.1 of 2024-11-18 15:01:56 / 15:06:24 BJT (catalogs/scenarios CENC list)
M44 = ("cenc-sb-20241118150156", datetime(2024, 11, 18, 7, 1, 56, tzinfo=UTC), 29.83, 92.26, 4.4)
M41 = ("cenc-sb-20241118150624", datetime(2024, 11, 18, 7, 6, 24, tzinfo=UTC), 29.83, 92.25, 4.1)


def view(
    eid: str,
    at: datetime,
    lat: float,
    lon: float,
    m: float,
    where: tuple[float, float],
    *,
    status: str = "reviewed",
    depth_km: float = 10.0,
) -> EventView:
    d = epicentral_km(lat, lon, *where)
    return EventView(
        eid, at, lat, lon, depth_km, m, status, predict_intensity(m, depth_km, d).upper, d
    )  # type: ignore[arg-type]


def replay(where: tuple[float, float], sub_id: str) -> list[tuple[str, tuple[Decision, ...]]]:
    sub = SubscriberView(sub_id)
    thread: ThreadState | None = None
    largest: EventView | None = None
    out = []
    for n, (eid, at, lat, lon, m, seq_type) in enumerate(SCENARIO, start=1):
        ev = view(eid, at, lat, lon, m, where)
        largest = ev if largest is None or ev.magnitude > largest.magnitude else largest
        ctx = PolicyInput("seq1", "new", ev, largest, seq_type, member_count=n, last_event_at=at)
        p = plan(
            ctx,
            thread,
            sub,
            PARAMS,
            now=at + timedelta(minutes=10),
            notice_id=lambda d, eid=eid: f"{eid}-{d.kind}",
        )
        thread = p.thread
        out.append((eid, p.decisions))
    return out


def test_maizhokunggar_lhasa_gets_report_guidance_then_one_swarm_advisory() -> None:
    """Lhasa (zh+bo): M4.1 not felt (recorded), M4.5 report+felt guidance then a swarm advisory, M4.0 nothing."""
    (_, d41), (_, d45), (_, d40) = replay(LHASA, "lhasa-1")
    assert [d.send for d in d41] == [False]
    assert d41[0].reason_code == "below_threshold"
    assert d41[0].degree == 2  # M4.1 at 110 km: mean+1σ = 2.24 -> II, below III
    assert "II" in d41[0].reason_en and "Ⅲ" in d41[0].reason_zh

    assert [(d.send, d.kinds, d.msg_type) for d in d45] == [
        (True, ("official_report", "felt_guidance"), "Alert"),
        (True, ("swarm_advisory",), "Update"),
    ]
    assert d45[0].reason_code == "first_felt" and d45[0].degree == 3
    assert d45[1].reason_code == "type_changed"
    assert d45[1].references == ("e45-official_report",)

    assert [d.send for d in d40] == [False]
    assert d40[0].reason_code == "below_threshold"
    assert "Already told about M4.5" in d40[0].reason_en
    assert "daily swarm summary" in d40[0].reason_en
    assert d40[0].reason_zh


def test_maizhokunggar_chengdu_gets_nothing_with_reasons() -> None:
    """Chengdu: three recorded 'not sent' decisions, one per event."""
    for _, decisions in replay(CHENGDU, "chengdu-1"):
        assert len(decisions) == 1
        (d,) = decisions
        assert not d.send and d.reason_code == "below_threshold" and d.degree == 1
        assert d.reason_en.startswith("Predicted not felt here (I)")
        assert d.reason_zh.startswith("本地预计无感（Ⅰ度）")


def _thread_after_m45() -> tuple[ThreadState, EventView]:
    ev = view(*SCENARIO[1][:5], LHASA)
    ctx = PolicyInput("seq1", "new", ev, ev, "swarm", member_count=2, last_event_at=ev.origin_at)
    p = plan(
        ctx, None, SubscriberView("s"), PARAMS, now=ev.origin_at, notice_id=lambda d: f"n-{d.kind}"
    )
    assert p.thread is not None
    return p.thread, ev


def test_daily_summary_only_for_felt_quakes_the_budget_held() -> None:
    """No summary for quakes nobody here felt (the M4.0 of 11-08 is II in Lhasa), however many:
    a summary goes out only when a felt quake was folded, an hour after the last notice at the
    earliest, at most once a day, and it names the folded quake."""
    thread, m45 = _thread_after_m45()
    m40 = view(*SCENARIO[2][:5], LHASA)
    assert m40.degree == 2
    sub = SubscriberView("s")
    tick = lambda n, last: PolicyInput(
        "seq1", "daily", m40, m45, "swarm", member_count=n, last_event_at=last)
    due_at = m45.origin_at + timedelta(hours=40)  # what used to send a summary of 3 quakes
    unfelt = decide(tick(3, m40.origin_at), thread, sub, PARAMS, now=due_at)
    assert (unfelt.send, unfelt.reason_code) == (False, "summary_nothing_felt")
    assert "not pushed" in unfelt.reason_en and "本地无感的地震不推送" in unfelt.reason_zh
    # the real M4.4 and M4.1 of 2024-11-18, 4.5 min apart, both felt in Dagze (III)
    m44, m41 = view(*M44, DAGZE), view(*M41, DAGZE)
    assert (m44.degree, m41.degree) == (3, 3)
    p44 = plan(PolicyInput("seq1", "new", m44, m45, "swarm", member_count=14,
                           last_event_at=M44[1]), thread, sub, PARAMS, now=M44[1],
               notice_id=lambda d: "n44")
    assert p44.decisions[0].reason_code == "felt_in_swarm" and p44.thread is not None
    p41 = plan(PolicyInput("seq1", "new", m41, m45, "swarm", member_count=15,
                           last_event_at=M41[1]), p44.thread, sub, PARAMS, now=M41[1],
               notice_id=lambda d: "n41")
    assert [d.reason_code for d in p41.decisions] == ["felt_folded"]
    held = p41.thread
    assert held is not None and held.folded == Folded(1, 4.1, M41[1])
    soon = decide(tick(15, M41[1]), held, sub, PARAMS, now=M41[1] + timedelta(minutes=30))
    assert (soon.send, soon.reason_code) == (False, "summary_too_soon")
    at = M41[1] + timedelta(hours=3)
    due = decide(tick(15, M41[1]), held, sub, PARAMS, now=at)
    assert (due.send, due.kind, due.reason_code, due.msg_type) == (
        True, "swarm_advisory", "daily_summary", "Update")
    assert due.folded == Folded(1, 4.1, M41[1]) and due.references == ("n44",)
    told = advance(held, tick(15, M41[1]), due, sub, notice_id="sum1", now=at)
    assert told is not None and told.folded is None
    later = decide(tick(15, M41[1]), told, sub, PARAMS, now=at + timedelta(hours=25))
    assert (later.send, later.reason_code) == (False, "summary_nothing_felt")
    # one summary a day even when felt quakes keep being folded
    again = decide(tick(16, M41[1]), replace(told, folded_count=1, folded_magnitude=3.9,
                                             folded_at=M41[1]), sub, PARAMS,
                   now=at + timedelta(hours=5))
    assert (again.send, again.reason_code) == (False, "summary_too_soon")
    quiet = decide(tick(16, M41[1]), replace(told, folded_count=1, folded_magnitude=3.9,
                                             folded_at=M41[1]), sub, PARAMS,
                   now=M41[1] + timedelta(days=5))
    assert (quiet.send, quiet.reason_code) == (False, "summary_swarm_quiet")


def test_folded_felt_quake_is_named_in_the_next_short_notice() -> None:
    """After the real M4.4, the M4.1 4.5 min later is folded; the next felt quake of the swarm
    (here an M4.2 two hours on) is a short notice that names it, and names it only once."""
    thread, m45 = _thread_after_m45()
    sub = SubscriberView("s")
    t = thread
    for i, (ev, at) in enumerate(((view(*M44, DAGZE), M44[1]), (view(*M41, DAGZE), M41[1]))):
        t = plan(PolicyInput("seq1", "new", ev, m45, "swarm", member_count=14 + i,
                             last_event_at=at), t, sub, PARAMS, now=at,
                 notice_id=lambda d, i=i: f"n{i}").thread
    assert t is not None and t.folded_count == 1
    t3 = M44[1] + timedelta(hours=2)
    ctx3 = PolicyInput("seq1", "new", view("e42", t3, 29.83, 92.25, 4.2, DAGZE), m45, "swarm",
                       member_count=16, last_event_at=t3)
    p3 = plan(ctx3, t, sub, PARAMS, now=t3, notice_id=lambda d: "n42")
    (d3,) = p3.decisions
    assert (d3.send, d3.reason_code) == (True, "felt_in_swarm")
    assert d3.folded == Folded(1, 4.1, M41[1])
    assert "1 earlier felt quake(s)" in d3.reason_en and "1次有感地震" in d3.reason_zh
    assert p3.thread is not None and p3.thread.folded is None


def test_larger_felt_event_is_notified_again() -> None:
    """After the M4.5, a felt M5.0 at the same place is a new report with guidance."""
    thread, m45 = _thread_after_m45()
    big = view("e50", m45.origin_at + timedelta(days=1), 29.85, 92.25, 5.0, LHASA)
    ctx = PolicyInput("seq1", "new", big, big, "swarm", member_count=3, last_event_at=big.origin_at)
    d = decide(ctx, thread, SubscriberView("s"), PARAMS, now=big.origin_at)
    assert (d.send, d.reason_code, d.kinds) == (
        True,
        "larger_event",
        ("official_report", "felt_guidance"),
    )


def test_felt_smaller_event_outside_a_swarm_is_not_sent() -> None:
    """In a mainshock-aftershock sequence a felt event no larger than what was told is not sent."""
    thread, m45 = _thread_after_m45()
    near = view("e44", m45.origin_at + timedelta(hours=1), 29.85, 92.25, 4.4, (29.85, 92.05))
    ctx = PolicyInput("seq1", "new", near, m45, "mainshock_aftershock", member_count=3,
                      last_event_at=near.origin_at)
    d = decide(ctx, thread, SubscriberView("s"), PARAMS, now=near.origin_at)
    assert (d.send, d.reason_code) == (False, "not_larger")


def test_felt_quake_of_a_swarm_is_explained_within_the_flood_budget() -> None:
    """A smaller felt quake of the swarm gets a short notice; a second within the hour is folded
    into the next notice; after the hour the next felt quake is explained again."""
    thread, m45 = _thread_after_m45()
    sub = SubscriberView("s")
    here = (29.85, 92.05)  # 19 km from the epicentre: M4.4 is felt
    t1 = m45.origin_at + timedelta(days=11)
    e44 = view("e44", t1, 29.85, 92.25, 4.4, here)
    ctx = PolicyInput("seq1", "new", e44, m45, "swarm", member_count=9, last_event_at=t1)
    d1 = decide(ctx, thread, sub, PARAMS, now=t1)
    assert (d1.send, d1.reason_code, d1.kinds, d1.msg_type) == (
        True, "felt_in_swarm", ("official_report", "felt_guidance"), "Update")
    assert d1.references == thread.notice_ids[-1:]
    thread = advance(thread, ctx, d1, sub, notice_id="n44", now=t1)
    t2 = t1 + timedelta(minutes=20)
    e41 = view("e41b", t2, 29.85, 92.25, 4.1, here)
    ctx2 = PolicyInput("seq1", "new", e41, m45, "swarm", member_count=10, last_event_at=t2)
    d2 = decide(ctx2, thread, sub, PARAMS, now=t2)
    assert (d2.send, d2.reason_code) == (False, "felt_folded")
    assert "20 min ago" in d2.reason_en and "next notice names it" in d2.reason_en
    t3 = t1 + timedelta(minutes=61)
    d3 = decide(PolicyInput("seq1", "new", view("e42", t3, 29.85, 92.25, 4.2, here), m45,
                            "swarm", member_count=11, last_event_at=t3), thread, sub, PARAMS,
                now=t3)
    assert (d3.send, d3.reason_code) == (True, "felt_in_swarm")


def test_unfelt_quake_of_a_swarm_stays_silent() -> None:
    """A swarm quake predicted below the resident's threshold is not sent."""
    thread, m45 = _thread_after_m45()
    t = m45.origin_at + timedelta(days=1)
    far = view("e30", t, 29.85, 92.25, 3.0, LHASA)
    d = decide(PolicyInput("seq1", "new", far, m45, "swarm", member_count=3, last_event_at=t),
               thread, SubscriberView("s"), PARAMS, now=t)
    assert (d.send, d.reason_code) == (False, "below_threshold")


def test_drifting_origin_time_makes_at_most_one_update_per_interval() -> None:
    """Each poll moves the origin 70 s: one Update, then rate-limited until the interval passes."""
    at = SCENARIO[1][1]
    sub = SubscriberView("s")
    first = view("e45", at, 29.85, 92.25, 4.5, LHASA)
    ctx = PolicyInput("seq1", "new", first, first, "undetermined")
    thread = advance(None, ctx, decide(ctx, None, sub, PARAMS, now=at), sub, notice_id="r",
                     now=at)
    sent = []
    for poll in range(1, 16):  # 15 polls over 7.5 minutes
        now = at + timedelta(seconds=30 * poll)
        ev = view("e45", at + timedelta(seconds=70 * poll), 29.85, 92.25, 4.5, LHASA)
        d = decide(PolicyInput("seq1", "revised", ev, ev, "undetermined"), thread, sub, PARAMS,
                   now=now)
        if d.send:
            sent.append(poll)
            thread = advance(thread, PolicyInput("seq1", "revised", ev, ev, "undetermined"), d,
                             sub, notice_id=f"u{poll}", now=now)
        else:
            assert d.reason_code in ("update_rate_limited", "revision_minor")
    assert sent == [1]
    later = at + timedelta(minutes=31)
    ev = view("e45", at + timedelta(seconds=70 * 20), 29.85, 92.25, 4.5, LHASA)
    d = decide(PolicyInput("seq1", "revised", ev, ev, "undetermined"), thread, sub, PARAMS,
               now=later)
    assert (d.send, d.kind) == (True, "update")


def test_non_urgent_notices_in_quiet_hours_wait_until_0730() -> None:
    """The swarm advisory decided at 04:29 Beijing time is delivered at 07:30; the felt report now."""
    ev = view(*SCENARIO[1][:5], LHASA)
    now = ev.origin_at + timedelta(minutes=10)
    ctx = PolicyInput("seq1", "new", ev, ev, "swarm", member_count=2, last_event_at=ev.origin_at)
    p = plan(ctx, None, SubscriberView("s"), PARAMS, now=now, notice_id=lambda d: f"n-{d.kind}")
    report, advisory = p.decisions
    assert report.deliver_at is None
    assert advisory.deliver_at == datetime(2024, 11, 6, 23, 30, tzinfo=UTC)  # 07:30 UTC+8
    assert "07:30" in advisory.reason_en
    day = datetime(2024, 11, 7, 4, 0, tzinfo=UTC)  # 12:00 Beijing
    p2 = plan(ctx, None, SubscriberView("s"), PARAMS, now=day, notice_id=lambda d: f"n-{d.kind}")
    assert [d.deliver_at for d in p2.decisions] == [None, None]


def test_strong_shaking_sends_strong_guidance_with_high_urgency_even_in_quiet_hours() -> None:
    """Degree ≥ VI selects K5, urgency high, never lowered by quiet hours."""
    at = datetime(2024, 11, 6, 20, 19, tzinfo=UTC)  # 04:19 Beijing: quiet hours
    ev = view("e6", at, 29.85, 92.25, 6.0, (29.80, 92.20))
    ctx = PolicyInput("seq2", "new", ev, ev, "undetermined", member_count=1, last_event_at=at)
    d = decide(ctx, None, SubscriberView("s"), PARAMS, now=at)
    assert d.kinds == ("official_report", "strong_guidance")
    assert d.urgency == "high"


def test_quiet_hours_lower_advisory_urgency_but_not_felt_guidance() -> None:
    """At 04:29 Beijing time the felt report stays normal, the swarm advisory drops to low."""
    ev = view(*SCENARIO[1][:5], LHASA)
    ctx = PolicyInput("seq1", "new", ev, ev, "swarm", member_count=2, last_event_at=ev.origin_at)
    p = plan(
        ctx,
        None,
        SubscriberView("s"),
        PARAMS,
        now=ev.origin_at + timedelta(minutes=10),
        notice_id=lambda d: f"n-{d.kind}",
    )
    assert [d.urgency for d in p.decisions] == ["normal", "low"]
    assert "Quiet hours" in p.decisions[1].reason_en


def test_automatic_report_then_official_revision_that_matters_is_an_update() -> None:
    """K1 for an automatic event; official review moving M by 0.3 is a K6 Update referencing it."""
    at = SCENARIO[1][1]
    auto = view("e45", at, 29.85, 92.25, 4.8, LHASA, status="automatic")
    ctx = PolicyInput("seq1", "new", auto, auto, "undetermined", last_event_at=at)
    sub = SubscriberView("s")
    d1 = decide(ctx, None, sub, PARAMS, now=at)
    assert d1.kinds == ("quick_report", "felt_guidance")
    thread = advance(None, ctx, d1, sub, notice_id="auto1", now=at)
    official = view("e45", at, 29.85, 92.25, 4.5, LHASA)
    d2 = decide(
        PolicyInput("seq1", "revised", official, official, "undetermined"),
        thread,
        sub,
        PARAMS,
        now=at + timedelta(minutes=15),
    )
    assert (d2.send, d2.kind, d2.msg_type, d2.references) == (True, "update", "Update", ("auto1",))
    assert "automatic → official" in d2.reason_en and "magnitude 4.8 → 4.5" in d2.reason_en


def test_minor_revision_is_recorded_not_sent() -> None:
    """Automatic → official with ΔM 0.1 and a 3 km shift stays below every update threshold."""
    at = SCENARIO[1][1]
    auto = view("e45", at, 29.85, 92.25, 4.6, LHASA, status="automatic")
    sub = SubscriberView("s")
    ctx = PolicyInput("seq1", "new", auto, auto, "undetermined")
    thread = advance(None, ctx, decide(ctx, None, sub, PARAMS, now=at), sub, notice_id="a", now=at)
    official = view("e45", at + timedelta(seconds=2), 29.87, 92.26, 4.5, LHASA)
    d = decide(
        PolicyInput("seq1", "revised", official, official, "undetermined"),
        thread,
        sub,
        PARAMS,
        now=at,
    )
    assert (d.send, d.reason_code) == (False, "revision_minor")


def test_deletion_cancels_only_what_was_sent() -> None:
    """A deleted event that was notified gives a K7 Cancel with references; otherwise a recorded no."""
    thread, m45 = _thread_after_m45()
    sub = SubscriberView("s")
    gone = PolicyInput("seq1", "deleted", m45, m45, "swarm")
    d = decide(gone, thread, sub, PARAMS, now=m45.origin_at)
    assert (d.send, d.kind, d.msg_type, d.references) == (
        True,
        "cancel",
        "Cancel",
        ("n-official_report",),
    )
    never = decide(gone, None, sub, PARAMS, now=m45.origin_at)
    assert (never.send, never.reason_code) == (False, "deleted_not_told")


def test_subscriber_threshold_overrides_default() -> None:
    """A subscriber asking for IV or more is not told about a III."""
    ev = view(*SCENARIO[1][:5], LHASA)
    d = decide(
        PolicyInput("seq1", "new", ev, ev, "swarm"),
        None,
        SubscriberView("s", min_intensity=4),
        PARAMS,
        now=ev.origin_at,
    )
    assert (d.send, d.reason_code, d.degree) == (False, "below_threshold", 3)
    # a III is felt by few (少有感), not "not felt": it is below this resident's own IV
    assert d.reason_zh.startswith("本地预计少有感（Ⅲ度），低于该用户的通知阈值Ⅳ度")
    assert d.reason_en.startswith("Predicted felt by few here (III), below this subscriber's "
                                  "threshold IV")


@pytest.mark.parametrize(("degree", "zh"), [(1, "无感"), (2, "微有感"), (3, "少有感"),
                                            (4, "多有感"), (5, "惊醒"), (6, "惊慌")])
def test_not_sent_reasons_say_what_each_degree_means(degree: int, zh: str) -> None:
    """The reason's word for a degree is the GB/T 17742 label the notices use (zh glossary)."""
    from quakealert.core.render import default_catalog

    assert felt_words(degree)[1] == zh
    assert default_catalog().glossary["zh"][f"intensity.{degree}.label"].text == zh
    _, words = below_threshold_words(degree, 4)
    assert words.startswith(f"本地预计{zh}")


def test_quiet_hours_window_wraps_midnight() -> None:
    """22:00-07:00 Beijing covers 04:19 local and not 12:00 local."""
    assert in_quiet_hours(datetime(2024, 11, 6, 20, 19, tzinfo=UTC), "22:00", "07:00", 8)
    assert not in_quiet_hours(datetime(2024, 11, 7, 4, 0, tzinfo=UTC), "22:00", "07:00", 8)


def test_params_from_config() -> None:
    """[policy] table: known keys typed, lists to tuples, unknown keys rejected."""
    p = PolicyParams.from_config(
        {
            "felt_degree": 4,
            "sigma_factor": 0.5,
            "advise_types": ["swarm", "mainshock_aftershock"],
            "quiet_start": "23:00",
        }
    )
    assert (p.felt_degree, p.sigma_factor, p.advise_types, p.quiet_start) == (
        4,
        0.5,
        ("swarm", "mainshock_aftershock"),
        "23:00",
    )
    with pytest.raises(ConfigError, match="unknown"):
        PolicyParams.from_config({"felt": 3})
    with pytest.raises(ConfigError):
        PolicyParams.from_config({"quiet_end": "7pm"})
    with pytest.raises(ConfigError):
        PolicyParams.from_config({"felt_degree": 7, "strong_degree": 6})
