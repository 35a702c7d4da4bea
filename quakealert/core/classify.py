"""Sequence typing by the Chinese operational scheme, with provisional states and reasons.

Thresholds: 周惠兰 et al. (1980), reference/seismology.md §1.3 [K]; evidence rules §8.2.
One agency's magnitudes per classification (§6.2: never mix catalogues); every decision
carries bilingual reasons (en, zh) that duty staff can read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from quakealert.core import forecast as fc
from quakealert.core import stats as st
from quakealert.core.context import Context, regional_context
from quakealert.core.geo import distance_km
from quakealert.core.sequences import (
    QuakeSequence,
    SequenceParams,
    episodes,
    to_us,
    wells_coppersmith_length_km,
)
from quakealert.model import Event

if TYPE_CHECKING:
    from quakealert.core.sequences import SequenceEngine

UNDETERMINED = "undetermined"
SWARM = "swarm"
MA = "mainshock-aftershock"
FMA = "foreshock-mainshock-aftershock"
ISOLATED = "isolated"
DOUBLET = "doublet"
TYPES = (UNDETERMINED, SWARM, MA, FMA, ISOLATED, DOUBLET)
TYPE_ZH = {
    UNDETERMINED: "类型未定",
    SWARM: "震群型",
    MA: "主震-余震型",
    FMA: "前震-主震-余震型",
    ISOLATED: "孤立型",
    DOUBLET: "双震型",
}
# §8.2: when ΔM and Rq disagree, show the more cautious type (swarm > MA > isolated)
CAUTION = {SWARM: 3, MA: 2, ISOLATED: 1}
US_PER_H = 3_600_000_000


@dataclass(frozen=True, slots=True)
class Reason:
    """One step of a decision, in English and Chinese, with the numbers behind it."""

    code: str
    en: str
    zh: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SequenceStats:
    """Diagnostics of one sequence (none of them decides the type)."""

    mc: float | None
    mc_method: str
    b: st.BValue | None
    b_reliable: bool
    omori: st.OmoriFit | None
    moment_skewness: float | None
    zbz: st.ZbzResult | None
    zbz_agrees: bool | None


@dataclass(frozen=True, slots=True)
class Forecast:
    """What may follow: RJ table, swarm rate statement, or why there is no number yet."""

    kind: str  # "rj" | "swarm-rate" | "none"
    public: bool
    en: str
    zh: str
    regime: str | None = None
    a_mean: float | None = None  # mean of the a distribution used (posterior if updated)
    bayesian: bool = False
    n_fit: int | None = None
    m_fit: float | None = None
    rate_per_d: float | None = None
    start_at: datetime | None = None
    rows: tuple[fc.ForecastRow, ...] = ()
    p_ge_m1_7d: float | None = None


@dataclass(frozen=True, slots=True)
class Classification:
    """The type of one sequence at ``at``, with the evidence and the reasons."""

    sequence_id: str
    type: str
    final: bool
    at: datetime
    agency: str | None
    n_events: int
    n_agency: int
    largest: Event | None
    largest_magnitude: float | None
    largest_mag_type: str | None
    second_magnitude: float | None
    delta_m: float | None
    energy_ratio: float | None
    mc: float | None
    foreshock_ids: tuple[str, ...]
    reasons: tuple[Reason, ...]
    stats: SequenceStats | None
    forecast: Forecast | None
    context: Context | None
    flags: tuple[str, ...] = ()


def choose_agency(events: Iterable[Event], priority: tuple[str, ...]) -> str | None:
    """The highest-priority agency that reported the sequence; others by count, then name."""
    counts: dict[str, int] = {}
    for e in events:
        for c in e.contributors:
            if c.magnitude is not None and c.status != "deleted":
                counts[c.source] = counts.get(c.source, 0) + 1
    if not counts:
        return None
    rank = {name: i for i, name in enumerate(priority)}
    return min(counts, key=lambda s: (rank.get(s, len(priority)), -counts[s], s))


def energy_ratio(mags: np.ndarray) -> float:
    """Rq = 10^(1.5 M1) / sum 10^(1.5 Mi) (lg E = 1.5 M + 4.8, §1.2; the constant cancels)."""
    return float(1.0 / np.sum(10.0 ** (1.5 * (mags - mags.max()))))


def _f(x: float | None, nd: int = 1) -> str:
    return "—" if x is None else f"{x:.{nd}f}"


def classify_sequence(
    seq: QuakeSequence,
    params: SequenceParams,
    now: datetime,
    *,
    engine: SequenceEngine | None = None,
    background: Iterable[Event] | None = None,
    diagnostics: bool = True,
) -> Classification:
    """Type ``seq`` as known at ``now`` (members after ``now`` are ignored).

    Regional context comes from ``engine`` (its other events) or from ``background``. With
    ``diagnostics=False`` the statistics (b, Omori fit, ZBZ) and the forecast are skipped: they
    never decide the type, and the daemon refreshes them less often than it re-types.
    """
    p = params
    members = [e for e in seq.events if e.origin_at <= now and e.status != "deleted"]
    reasons: list[Reason] = []
    parts = episodes(members, p)
    if len(parts) > 1:  # a long-lived swarm field: type the current episode (issue 11)
        whole_d = (members[-1].origin_at - members[0].origin_at).total_seconds() / 86_400
        members = parts[-1]
        first, last = members[0].origin_at, members[-1].origin_at
        reasons.append(Reason(
            "episode",
            f"The sequence spans {whole_d:.0f} days, longer than its largest event's window "
            f"(Gardner–Knopoff, at least {p.episode_min_span_d:g} days); its pauses of more "
            f"than {p.episode_pause_d:g} days split it into {len(parts)} episodes, and the "
            f"current one ({first:%Y-%m-%d} to {last:%Y-%m-%d}, {len(members)} events) is typed.",
            f"序列持续{whole_d:.0f}天，超过其最大地震的时间窗（Gardner–Knopoff，至少"
            f"{p.episode_min_span_d:g}天）；以超过{p.episode_pause_d:g}天的平静期分为{len(parts)}"
            f"个活动期，仅对当前活动期（{first:%Y-%m-%d}至{last:%Y-%m-%d}，{len(members)}次地震）"
            "判定类型。",
            {"episodes": len(parts), "span_d": whole_d, "episode_events": len(members)},
        ))
    agency = choose_agency(members, p.agency_priority)
    rows: list[tuple[Event, float, str | None]] = []
    if agency is not None:
        for e in members:
            got = e.magnitude_from(agency)
            if got is not None:
                rows.append((e, got[0], got[1]))
    if not rows:
        reasons.append(Reason("no-magnitudes", "No member has a magnitude yet; no type.",
                              "序列中尚无震级数据，暂不判定类型。"))
        return Classification(seq.id, UNDETERMINED, False, now, agency, len(members), 0, None,
                              None, None, None, None, None, None, (), tuple(reasons), None, None,
                              None)
    n_other = len(members) - len(rows)
    reasons.append(Reason(
        "agency",
        f"Magnitudes from one agency only: {agency} ({len(rows)} of {len(members)} events; "
        f"{n_other} reported only by others are listed but left out of ΔM and Rq).",
        f"仅采用{agency}一家机构的震级（{len(members)}次地震中的{len(rows)}次；其余{n_other}次"
        f"仅由其他机构测定，列出但不参与ΔM和Rq计算）。",
        {"agency": agency, "n_agency": len(rows), "n_events": len(members)},
    ))
    t_us = np.array([to_us(e.origin_at) for e, _, _ in rows], dtype=np.int64)
    mags = np.array([m for _, m, _ in rows], dtype=float)
    order = np.lexsort((np.arange(len(rows)), -mags))  # largest first, earliest (input order) on ties
    i1 = int(order[0])
    largest, m1, mt1 = rows[i1]
    t1 = int(t_us[i1])
    m2 = float(mags[order[1]]) if len(rows) > 1 else None

    # Mc: maximum curvature + 0.2 (§4.2), floored at the network's Mc when configured
    floor = p.mc_floor(agency or "")
    mc: float | None
    if len(rows) >= p.mc_min_events:
        mc = st.mc_maxc(mags, p.mc_bin, p.mc_correction)
        mc_method = f"maxc+{p.mc_correction:.1f}"
        if floor is not None and floor > mc:
            mc, mc_method = floor, "network floor"
    elif floor is not None:
        mc, mc_method = floor, "network floor"
    else:
        mc, mc_method = None, "too few events"
    used = mags >= (mc - p.mc_bin / 2) if mc is not None else np.ones(len(mags), dtype=bool)
    used[i1] = True
    rq = energy_ratio(mags[used])
    dm = None if m2 is None else round(m1 - m2, 10)
    age_us = to_us(now) - t1
    age_h = age_us / US_PER_H
    span_h = float(t_us.max() - t_us.min()) / US_PER_H
    n_near = int(np.sum(mags >= m1 - p.swarm_within_m))
    if mc is None:
        mc_en = (f"Mc unknown: fewer than {p.mc_min_events} events for maximum curvature; "
                 f"all {len(rows)} magnitudes are used")
        mc_zh = f"事件少于{p.mc_min_events}次，无法用最大曲率法估计完整性震级Mc，全部{len(rows)}次参与计算"
    else:
        mc_en = f"Mc = {mc:.1f} ({mc_method}); {int(used.sum())} events at or above Mc enter Rq"
        mc_zh = f"完整性震级Mc = {mc:.1f}（{mc_method}），Mc以上{int(used.sum())}次地震参与Rq计算"
    reasons.append(Reason("mc", mc_en + ".", mc_zh + "。",
                          {"mc": mc, "method": mc_method, "n_used": int(used.sum())}))
    mt = f" {mt1}" if mt1 else ""
    if dm is None:
        reasons.append(Reason(
            "delta-m", f"Only one event (M{m1:.1f}{mt}); ΔM is not defined yet.",
            f"目前仅有一次地震（M{m1:.1f}），ΔM尚无法计算。", {"m1": m1}))
    else:
        reasons.append(Reason(
            "delta-m",
            f"ΔM = M1 − M2 = {m1:.2f} − {m2:.2f} = {dm:.2f} (swarm below {p.swarm_max_dm}, "
            f"isolated from {p.isolated_min_dm}).",
            f"ΔM = M1 − M2 = {m1:.2f} − {m2:.2f} = {dm:.2f}（小于{p.swarm_max_dm}为震群型，"
            f"不小于{p.isolated_min_dm}为孤立型）。",
            {"m1": m1, "m2": m2, "delta_m": dm},
        ))
    reasons.append(Reason(
        "rq",
        f"Rq = energy share of the largest event = {rq:.3f} over {int(used.sum())} events "
        f"(swarm at or below {p.swarm_max_rq}, isolated above {p.isolated_min_rq}).",
        f"最大地震能量占全序列比例Rq = {rq:.3f}（{int(used.sum())}次地震；不大于{p.swarm_max_rq}"
        f"为震群型，大于{p.isolated_min_rq}为孤立型）。",
        {"rq": rq, "n": int(used.sum())},
    ))
    reasons.append(Reason(
        "counts",
        f"{len(rows)} events; {n_near} within {p.swarm_within_m:g} of M1; span {span_h:.1f} h; "
        f"largest event {age_h:.1f} h before the classification time.",
        f"共{len(rows)}次地震，其中{n_near}次震级与最大地震相差{p.swarm_within_m:g}级以内；"
        f"持续{span_h:.1f}小时；最大地震发生于{age_h:.1f}小时前。",
        {"n": len(rows), "n_near_m1": n_near, "span_h": span_h, "age_h": age_h},
    ))

    # foreshocks: earlier members within the window, within the mainshock's rupture length
    # (max(10 km, Wells & Coppersmith 1994), §3.5; Ridgecrest's M6.4 lies ~11 km from its
    # M7.1, well inside 48 km) and M >= max(Mc, M1 - 3). Without an Mc estimate the floor is
    # the smallest magnitude the agency lists in the sequence: the catalogue is complete to
    # no less (issue 11), so a sparse M >= 5 list cannot call an M4.7 a foreshock.
    fs_floor = (mc if mc is not None else float(mags.min()) if p.sparse_mc_floor
                else -math.inf)
    fs_min = max(fs_floor, m1 - p.foreshock_within_m)
    fs_t0 = t1 - int(p.foreshock_window_d * 24 * US_PER_H)
    fs_km = max(p.foreshock_min_km, wells_coppersmith_length_km(m1))
    fore = [
        (rows[k][0].id, float(mags[k]), rows[k][0].origin_at)
        for k in range(len(rows))
        if fs_t0 <= t_us[k] < t1 and mags[k] >= fs_min
        and distance_km(largest.latitude, largest.longitude, rows[k][0].latitude,
                        rows[k][0].longitude) <= fs_km
    ]
    # the later of the two largest: a doublet is claimed only once both are a day old
    pair_age_h = (age_us if m2 is None else to_us(now) - max(t1, int(t_us[order[1]]))) / US_PER_H
    kind = _decide(p, reasons, dm, rq, m1, mc, age_h, span_h, n_near, mags, used, len(rows),
                   pair_age_h)
    if kind == MA and fore:
        kind = FMA
        big = max(fore, key=lambda x: (x[1], -to_us(x[2])))
        reasons.append(Reason(
            "foreshocks",
            f"{len(fore)} earlier event(s) within {p.foreshock_window_d:g} days before M1 and "
            f"{fs_km:.0f} km of it with M ≥ {fs_min:.1f}; the largest, M{big[1]:.1f} on {big[2]:%Y-%m-%d %H:%M} UTC, is now "
            f"considered a foreshock.",
            f"最大地震前{p.foreshock_window_d:g}天内、{fs_km:.0f}公里内有{len(fore)}次M{fs_min:.1f}以上"
            "地震；其中最大的"
            f"M{big[1]:.1f}地震（{(big[2] + timedelta(hours=8)):%Y-%m-%d %H:%M}北京时间）现视为前震。",
            {"n": len(fore), "largest_id": big[0], "largest_magnitude": big[1],
             "radius_km": fs_km},
        ))
    final = kind != UNDETERMINED and age_h >= p.final_age_d * 24
    reasons.append(_status_reason(kind, final, p))

    stats: SequenceStats | None = None
    zbz_flag: bool | None = None
    if diagnostics:
        stats, zbz_flag = _stats(p, rows, t_us, mags, mc, i1, to_us(now))
    flags: list[str] = []
    if zbz_flag is False:
        flags.append("zbz-disagrees")
    if stats is not None and stats.zbz is not None:
        z = stats.zbz
        agree_en = "agrees with" if zbz_flag else "DISAGREES with"
        agree_zh = "一致" if zbz_flag else "不一致"
        reasons.append(Reason(
            "zbz",
            f"Nearest-neighbour diagnostic (Zaliapin & Ben-Zion, log10 η0 = {z.log10_eta0:g}) "
            f"{agree_en} the window membership: {z.largest_family_share:.0%} of {z.n} events "
            f"in the largest event's family, {z.families} families, {z.singles} singles.",
            f"最近邻聚类诊断（Zaliapin & Ben-Zion）与时空窗口分组{agree_zh}：{z.n}次地震中"
            f"{z.largest_family_share:.0%}属于最大地震所在的族，共{z.families}个族、{z.singles}个孤立事件。",
            {"share": z.largest_family_share, "families": z.families, "singles": z.singles},
        ))
    context = None
    if m1 >= p.context_min_magnitude and (engine is not None or background is not None):
        start = largest.origin_at - timedelta(days=365.25 * p.context_years)
        bg = (engine.nearby(largest.latitude, largest.longitude, p.context_radius_km, start,
                            largest.origin_at)
              if engine is not None else background)
        assert bg is not None and agency is not None
        context = regional_context(largest, m1, bg, agency, radius_km=p.context_radius_km,
                                   years=p.context_years, min_magnitude=p.context_min_magnitude)
    forecast = (_forecast(p, kind, rows, t_us, mags, m1, t1, mc, largest, now, stats)
                if stats is not None else None)
    return Classification(
        sequence_id=seq.id, type=kind, final=final, at=now, agency=agency,
        n_events=len(members), n_agency=len(rows), largest=largest, largest_magnitude=m1,
        largest_mag_type=mt1, second_magnitude=m2, delta_m=dm, energy_ratio=rq, mc=mc,
        foreshock_ids=tuple(f[0] for f in fore) if kind == FMA else (),
        reasons=tuple(reasons), stats=stats, forecast=forecast, context=context,
        flags=tuple(flags),
    )


def _crit_type(p: SequenceParams, dm: float | None, rq: float) -> tuple[str | None, str]:
    dm_type = None
    if dm is not None:
        dm_type = SWARM if dm < p.swarm_max_dm else ISOLATED if dm >= p.isolated_min_dm else MA
    rq_type = SWARM if rq <= p.swarm_max_rq else ISOLATED if rq > p.isolated_min_rq else MA
    return dm_type, rq_type


def _decide(
    p: SequenceParams,
    reasons: list[Reason],
    dm: float | None,
    rq: float,
    m1: float,
    mc: float | None,
    age_h: float,
    span_h: float,
    n_near: int,
    mags: np.ndarray,
    used: np.ndarray,
    n: int,
    pair_age_h: float | None = None,
) -> str:
    """The §8.2 state machine; appends the reasons that decided it."""
    def add(code: str, en: str, zh: str, **values: Any) -> None:
        reasons.append(Reason(code, en, zh, values))

    if age_h * 60 < p.no_type_min:
        add("too-early", f"Less than {p.no_type_min:g} minutes since the largest event: "
            "magnitudes are not yet stable, so no type is given.",
            f"距最大地震不足{p.no_type_min:g}分钟，震级尚未稳定，暂不判定类型。", age_h=age_h)
        return UNDETERMINED
    complete = mc is not None and mc <= m1 - p.isolated_complete_m
    if dm is None:
        if age_h >= p.isolated_min_age_d * 24 and complete:
            add("single", f"A single event with no other M ≥ Mc for {p.isolated_min_age_d:g} days "
                "in a catalogue complete to M1 − 2.5: isolated.",
                f"{p.isolated_min_age_d:g}天内无其他Mc以上地震，且目录完整至M1−2.5：孤立型。")
            return ISOLATED
        if age_h >= p.undetermined_h:
            add("single", "Only one event, but isolated cannot be confirmed: the catalogue is "
                f"not known to be complete to M1 − {p.isolated_complete_m:g}, or fewer than "
                f"{p.isolated_min_age_d:g} days have passed; undetermined.",
                f"仅一次地震，但目录未知是否完整至M1−{p.isolated_complete_m:g}或观察不足"
                f"{p.isolated_min_age_d:g}天，无法确认孤立型，类型未定。")
            return UNDETERMINED
        add("single", "Only one event so far: too early to tell a single earthquake, the start "
            "of a swarm or a foreshock apart.",
            "目前仅一次地震，尚无法区分孤立地震、震群开始或前震。")
        return UNDETERMINED
    dm_type, rq_type = _crit_type(p, dm, rq)
    assert dm_type is not None
    kind = max((dm_type, rq_type), key=lambda k: CAUTION[k])
    if dm_type != rq_type:
        add("mixed", f"ΔM points to {dm_type} but Rq points to {rq_type}; the criteria disagree, "
            f"so the more cautious type applies: {kind}.",
            f"ΔM判据指向{TYPE_ZH[dm_type]}，Rq判据指向{TYPE_ZH[rq_type]}，两者不一致，"
            f"按更谨慎的类型判定：{TYPE_ZH[kind]}。",
            by_delta_m=dm_type, by_rq=rq_type, applied=kind)
    if kind == SWARM:
        # 双震型 (§1.1 note 2): the two largest, of nearly equal size (ΔM ≤ 0.5), release most
        # of the energy (≥ 90 %), however many smaller events follow — checked before the swarm
        # rule, so a pair of great quakes with their aftershocks is a doublet, not a swarm.
        # Two events alone always share 100 %: then only §8.2's pair rule (ΔM ≤ 0.2) applies.
        top2 = np.sort(mags[used])[-2:]
        share2 = float(np.sum(10.0 ** (1.5 * (top2 - m1))) / np.sum(10.0 ** (1.5 * (mags[used] - m1))))
        max_dm = p.doublet_max_dm if int(used.sum()) > 2 else p.doublet_pair_max_dm
        if dm <= max_dm + 1e-9 and share2 >= p.doublet_min_share:
            wait_h = age_h if pair_age_h is None else pair_age_h
            if wait_h < p.undetermined_h:
                # Like the mainshock type (§8.2 MA_PROVISIONAL: age ≥ 24 h), a doublet says the
                # largest events hold the energy, which a comparable event in the next day can
                # undo (§1.6: most largest aftershocks come within a day); and §8.2 allows no
                # type in the first 24 h but a swarm that meets the swarm conditions. The
                # Maizhokunggar pairs (M3.2/M3.1 2.6 min apart, M4.1/M3.6 13 min apart) were
                # called doublets 30 min after (issue 11 type history).
                add("wait-doublet", f"The two largest events, of nearly equal size (ΔM "
                    f"{dm:.2f} ≤ {max_dm:g}), release {share2:.0%} of the energy: a doublet "
                    f"if no comparable event follows within {p.undetermined_h:g} h of the later "
                    f"of them ({wait_h:.1f} h so far); undetermined until then.",
                    f"最大与次大地震震级相近（ΔM {dm:.2f} ≤ {max_dm:g}），两者释放了"
                    f"{share2:.0%}的能量：若其中较晚一次之后{p.undetermined_h:g}小时内无相当地震，"
                    f"即为双震型（目前已过{wait_h:.1f}小时）；此前类型未定。",
                    share_two=share2, pair_age_h=wait_h)
                return UNDETERMINED
            add("doublet", f"The two largest events, of nearly equal size (ΔM {dm:.2f} ≤ "
                f"{max_dm:g}), release {share2:.0%} of the energy (≥ "
                f"{p.doublet_min_share:.0%}): doublet (a sub-type of the multiple-shock type).",
                f"最大与次大地震震级相近（ΔM {dm:.2f} ≤ {max_dm:g}），两者释放了"
                f"{share2:.0%}的能量（≥ {p.doublet_min_share:.0%}）：双震型（多震型的一种）。",
                share_two=share2)
            return DOUBLET
        if n_near >= p.swarm_min_events and span_h >= p.swarm_min_span_h:
            add("swarm", f"{n_near} events within {p.swarm_within_m:g} of the largest over "
                f"{span_h:.0f} h, no outstanding mainshock: swarm.",
                f"{span_h:.0f}小时内有{n_near}次震级相近的地震，无突出主震：震群型。")
            return SWARM
        if age_h >= p.undetermined_h:
            add("swarm", f"The criteria say swarm; fewer than {p.swarm_min_events} similar events "
                f"or a span under {p.swarm_min_span_h:g} h, but {p.undetermined_h:g} h have passed.",
                f"判据指向震群型；相近地震少于{p.swarm_min_events}次或持续不足{p.swarm_min_span_h:g}"
                f"小时，但已过{p.undetermined_h:g}小时。")
            return SWARM
        add("wait", "The criteria point to a swarm but the evidence is still thin; undetermined.",
            "判据指向震群型，但证据尚不充分，暂定类型未定。")
        return UNDETERMINED
    if age_h < p.undetermined_h:
        add("wait", f"Less than {p.undetermined_h:g} h since the largest event: undetermined "
            "(a larger event may still follow).",
            f"距最大地震不足{p.undetermined_h:g}小时，类型未定（仍可能发生更大地震）。")
        return UNDETERMINED
    if kind == ISOLATED:
        if not complete:
            add("incomplete", "ΔM and Rq say isolated, but the catalogue is not known to be "
                f"complete to M1 − {p.isolated_complete_m:g}: mainshock–aftershock or isolated; "
                "the more cautious mainshock–aftershock applies.",
                f"ΔM和Rq指向孤立型，但目录未知是否完整至M1−{p.isolated_complete_m:g}，"
                "无法区分主震-余震型与孤立型，按更谨慎的主震-余震型判定。", mc=mc)
            return MA
        if age_h < p.isolated_min_age_d * 24:
            add("wait-isolated", f"Isolated needs {p.isolated_min_age_d:g} days of quiet; "
                "mainshock–aftershock for now.",
                f"孤立型需观察{p.isolated_min_age_d:g}天，目前暂按主震-余震型。")
            return MA
        add("isolated", "One event released essentially all the energy: isolated.",
            "能量基本由一次地震释放：孤立型。")
        return ISOLATED
    add("mainshock", "One outstanding largest event, the others clearly smaller: "
        "mainshock–aftershock.", "有一个突出的最大地震，其余地震明显较小：主震-余震型。")
    return MA


def _status_reason(kind: str, final: bool, p: SequenceParams) -> Reason:
    if final:
        return Reason("final", f"Final: {p.final_age_d:g} days have passed since the largest "
                      f"event ({kind}).",
                      f"最大地震已过{p.final_age_d:g}天，类型确定为{TYPE_ZH[kind]}。")
    return Reason("provisional", f"Automatic and provisional ({kind}); final after "
                  f"{p.final_age_d:g} days, and a larger event re-types the sequence.",
                  f"自动初判，暂定为{TYPE_ZH[kind]}；{p.final_age_d:g}天后确定，如发生更大地震将重新判定。")


def _stats(
    p: SequenceParams,
    rows: list[tuple[Event, float, str | None]],
    t_us: np.ndarray,
    mags: np.ndarray,
    mc: float | None,
    i1: int,
    now_us: int,
) -> tuple[SequenceStats, bool | None]:
    mc_method = "maxc" if len(rows) >= p.mc_min_events else "too few events"
    bval = st.b_value(mags, mc, p.mc_bin) if mc is not None else None
    t_d = (t_us - t_us.min()) / (24 * US_PER_H)
    after = (t_us > t_us[i1]) & (mags >= (mc if mc is not None else -math.inf) - p.mc_bin / 2)
    omori = None
    if int(after.sum()) >= p.omori_min_events:
        rel = (t_us[after] - t_us[i1]) / (24 * US_PER_H)
        omori = st.omori_fit(rel.tolist(), (now_us - int(t_us[i1])) / (24 * US_PER_H))
    skew = st.moment_skewness(t_d, mags)
    zbz = None
    keep = np.arange(len(rows))
    if len(rows) > p.zbz_max_events:
        keep = np.sort(np.argsort(-mags, kind="stable")[: p.zbz_max_events])
    if len(keep) >= 2:
        order = keep[np.argsort(t_us[keep], kind="stable")]
        zbz = st.zbz_families(
            t_d[order], [rows[k][0].latitude for k in order], [rows[k][0].longitude for k in order],
            mags[order], df=p.zbz_df, b=p.zbz_b, log10_eta0=p.zbz_log10_eta0)
    agrees = None if zbz is None else zbz.largest_family_share >= p.zbz_min_share
    return (
        SequenceStats(mc=mc, mc_method=mc_method, b=bval,
                      b_reliable=bval is not None and bval.n >= p.b_min_events, omori=omori,
                      moment_skewness=skew, zbz=zbz, zbz_agrees=agrees),
        agrees,
    )


def _forecast(
    p: SequenceParams,
    kind: str,
    rows: list[tuple[Event, float, str | None]],
    t_us: np.ndarray,
    mags: np.ndarray,
    m1: float,
    t1: int,
    mc: float | None,
    largest: Event,
    now: datetime,
    stats: SequenceStats,
) -> Forecast | None:
    if m1 < p.forecast_min_magnitude:
        return None
    now_us = to_us(now)
    age_d = (now_us - t1) / (24 * US_PER_H)
    if age_d * 24 * 60 < p.forecast_no_number_min:
        return Forecast("none", p.public_forecast,
                        f"No numeric forecast within {p.forecast_no_number_min:g} minutes of the "
                        "largest event.",
                        f"最大地震后{p.forecast_no_number_min:g}分钟内不发布数值预测。", start_at=now)
    m_floor = mc if mc is not None else float(mags.min())
    if kind in (SWARM, DOUBLET):
        window_d = min(p.swarm_rate_window_d, max((now_us - int(t_us.min())) / (24 * US_PER_H),
                                                  1.0 / 24))
        recent = (t_us >= now_us - int(window_d * 24 * US_PER_H)) & (mags >= m_floor - p.mc_bin / 2)
        rate = int(recent.sum()) / window_d
        b = stats.b.b if stats.b is not None and stats.b_reliable else 1.0
        tab = fc.swarm_rate_forecast(rate, m_floor, b, p.forecast_magnitudes,
                                     p.forecast_durations_d)
        p7 = fc.swarm_rate_forecast(rate, m_floor, b, (m1,), (7.0,))[0].probability
        return Forecast(
            "swarm-rate", p.public_forecast,
            f"If current activity continues ({rate:.2f} events/day of M{m_floor:.1f}+ over the "
            f"last {window_d:.1f} days): swarms can go on for days to weeks, further events of "
            f"similar size are likely, and a larger event cannot be ruled out.",
            f"若当前活动水平持续（近{window_d:.1f}天平均每天{rate:.2f}次M{m_floor:.1f}以上地震）："
            f"震群活动可能持续数天至数周，震级相近的地震可能继续发生，不排除发生更大地震的可能。",
            rate_per_d=rate, m_fit=m_floor, start_at=now, rows=tuple(tab), p_ge_m1_7d=p7,
        )
    regime = fc.regime_for(largest.latitude, largest.longitude, p.regime_boxes, p.default_regime)
    rj = fc.REGIMES[regime]
    grid = fc.a_grid(p.a_min, p.a_max, p.a_step)
    weights = fc.prior_weights(rj, grid)
    bayes, n_fit, m_fit = False, None, None
    if age_d * 24 >= p.bayes_min_h and rj.a_sigma > 0:
        m_fit = m_floor
        # start where Page et al. Mc(t) has fallen to m_fit (§3.2, §4.3)
        t_s = 10.0 ** ((p.page_f * m1 - p.page_g - m_fit) / p.page_h)
        t_s = min(max(t_s, 0.0), age_d * 0.5)
        t_rel = (t_us - t1) / (24 * US_PER_H)
        n_fit = int(np.sum((t_rel > t_s) & (t_rel <= age_d) & (mags >= m_fit - p.mc_bin / 2)))
        weights = fc.bayes_weights(rj, grid, weights, m1, m_fit, n_fit, t_s, age_d)
        bayes = True
    tab = fc.rj_table(rj, m1, weights, grid, age_d, p.forecast_magnitudes, p.forecast_durations_d)
    p7 = fc.rj_table(rj, m1, weights, grid, age_d, (m1,), (7.0,))[0].probability
    a_mean = float(np.sum(weights * grid))
    row = next((r for r in tab if r.duration_d == 7.0 and r.magnitude == 3.0), tab[0])
    return Forecast(
        "rj", p.public_forecast,
        f"Reasenberg–Jones ({regime}{', updated with this sequence' if bayes else ', generic'}): "
        f"chance of at least one M{row.magnitude:g}+ in the next {row.duration_d:g} days "
        f"{row.probability:.0%} (likely number {row.n_low} to {row.n_high}); chance of an event "
        f"at least as large as M{m1:.1f} within 7 days {p7:.1%}. For duty staff; not public.",
        f"Reasenberg-Jones模型（{regime}{'，已用本序列更新' if bayes else '，通用参数'}）："
        f"未来{row.duration_d:g}天内发生M{row.magnitude:g}以上地震的概率为{row.probability:.0%}"
        f"（可能次数{row.n_low}至{row.n_high}次）；7天内发生不小于M{m1:.1f}地震的概率为{p7:.1%}。"
        f"仅供值班人员参考，不对公众发布。",
        regime=regime, a_mean=a_mean, bayesian=bayes, n_fit=n_fit, m_fit=m_fit, start_at=now,
        rows=tuple(tab), p_ge_m1_7d=p7,
    )


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return None if not math.isfinite(x) else round(x, 6)
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        return _clean(x.item())
    if isinstance(x, datetime):
        return iso(x)
    return x


def sequence_to_json(
    seq: QuakeSequence, cls: Classification, now: datetime, *, members: bool = True
) -> dict[str, Any]:
    """The JSON shape shared by the CLI, the store and the API."""
    lg = cls.largest
    agency = cls.agency
    out: dict[str, Any] = {
        "id": seq.id,
        "type": cls.type,
        "type_zh": TYPE_ZH[cls.type],
        "final": cls.final,
        "provisional": not cls.final,
        "classified_at": iso(now),
        "agency": agency,
        "n_events": cls.n_events,
        "n_agency": cls.n_agency,
        "first_at": iso(seq.first_at),
        "last_at": iso(max(e.origin_at for e in seq.events if e.origin_at <= now)
                       if any(e.origin_at <= now for e in seq.events) else seq.last_at),
        "largest": None if lg is None else {
            "id": lg.id, "time": iso(lg.origin_at), "latitude": lg.latitude,
            "longitude": lg.longitude, "depth_km": lg.depth_km,
            "magnitude": cls.largest_magnitude, "mag_type": cls.largest_mag_type,
        },
        "centre": None if lg is None else {"latitude": lg.latitude, "longitude": lg.longitude},
        "second_magnitude": cls.second_magnitude,
        "delta_m": cls.delta_m,
        "energy_ratio": cls.energy_ratio,
        "mc": cls.mc,
        "foreshock_ids": list(cls.foreshock_ids),
        "flags": list(cls.flags),
        "reasons": [{"code": r.code, "en": r.en, "zh": r.zh, "values": r.values}
                    for r in cls.reasons],
        "context": None if cls.context is None else {
            "count": cls.context.count, "rank": cls.context.rank,
            "is_largest": cls.context.rank == 1, "radius_km": cls.context.radius_km,
            "years": cls.context.years, "min_magnitude": cls.context.min_magnitude,
            "largest_id": cls.context.largest.event_id,
            "largest_magnitude": cls.context.largest.magnitude,
            "largest_at": cls.context.largest.origin_at,
            "largest_before": None if cls.context.largest_before is None else {
                "id": cls.context.largest_before.event_id,
                "magnitude": cls.context.largest_before.magnitude,
                "at": cls.context.largest_before.origin_at},
            "en": cls.context.en, "zh": cls.context.zh,
        },
        "stats": None if cls.stats is None else _stats_json(cls.stats),
        "forecast": None if cls.forecast is None else _forecast_json(cls.forecast),
    }
    if members:
        fs = set(cls.foreshock_ids)
        t_main = lg.origin_at if lg is not None else None
        ms = []
        for e in seq.events:
            if e.origin_at > now:
                continue
            got = e.magnitude_from(agency) if agency else None
            role = ("mainshock" if lg is not None and e.id == lg.id else "foreshock" if e.id in fs
                    else "before" if t_main is not None and e.origin_at < t_main else "after")
            ms.append({
                "id": e.id, "time": iso(e.origin_at), "latitude": e.latitude,
                "longitude": e.longitude, "depth_km": e.depth_km,
                "magnitude": None if got is None else got[0],
                "mag_type": None if got is None else got[1],
                "preferred_magnitude": e.magnitude, "preferred_mag_type": e.mag_type,
                "in_classification": got is not None, "role": role,
            })
        out["members"] = ms
    return _clean(out)  # type: ignore[no-any-return]


def _stats_json(s: SequenceStats) -> dict[str, Any]:
    return {
        "mc": s.mc, "mc_method": s.mc_method,
        "b_value": None if s.b is None else {
            "b": s.b.b, "b_utsu": s.b.b_utsu, "sigma_shi_bolt": s.b.sigma, "mc": s.b.mc,
            "n": s.b.n, "reliable": s.b_reliable},
        "omori": None if s.omori is None else {
            "k": s.omori.k, "c_d": s.omori.c_d, "p": s.omori.p, "n": s.omori.n,
            "start_d": s.omori.start_d, "end_d": s.omori.end_d},
        "moment_skewness": s.moment_skewness,
        "zbz": None if s.zbz is None else {
            "n": s.zbz.n, "families": s.zbz.families, "singles": s.zbz.singles,
            "largest_family_share": s.zbz.largest_family_share,
            "log10_eta0": s.zbz.log10_eta0, "agrees": s.zbz_agrees},
    }


def _forecast_json(f: Forecast) -> dict[str, Any]:
    return {
        "kind": f.kind, "public": f.public, "en": f.en, "zh": f.zh, "regime": f.regime,
        "a_mean": f.a_mean, "bayesian": f.bayesian, "n_fit": f.n_fit, "m_fit": f.m_fit,
        "rate_per_d": f.rate_per_d, "start_at": f.start_at, "p_ge_m1_7d": f.p_ge_m1_7d,
        "rows": [{"magnitude": r.magnitude, "duration_d": r.duration_d,
                  "probability": r.probability, "n_low": r.n_low, "n_high": r.n_high,
                  "n_median": r.n_median} for r in f.rows],
    }


def classify_events(
    events: Iterable[Event], params: SequenceParams, now: datetime
) -> list[tuple[QuakeSequence, Classification]]:
    """Group ``events`` known at ``now`` into sequences and type each (the batch path)."""
    from quakealert.core.sequences import build_sequences

    engine = build_sequences([e for e in events if e.origin_at <= now], params)
    return [(s, classify_in(engine, s.id, now)) for s in engine.sequences()]


def classify_in(engine: SequenceEngine, seq_id: str, now: datetime, *,
                diagnostics: bool = True) -> Classification:
    """Type one of ``engine``'s sequences at ``now``, its other events the regional context."""
    return classify_sequence(engine.sequence(seq_id), engine.params, now, engine=engine,
                             diagnostics=diagnostics)
