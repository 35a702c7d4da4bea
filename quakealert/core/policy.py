"""Who is told what, and why: one thread per (subscriber, sequence), with a budget against floods.

Rules (DESIGN.md "Residents, notices, delivery"; seismology.md §8.4; messages.md §8):
notify on the first event predicted felt at the subscriber; after that only for a larger event, a
change of sequence type (one advisory), a further felt quake of a swarm (at most one short notice
per hour), an official revision that matters (Update), a deletion or a retyping as a
non-earthquake such as an explosion (Cancel), or the daily swarm summary. Every decision, sent or
not, carries its reason in en and zh.

Flood budget of a swarm thread (issue 8 §4-5). A quake that is not felt where the resident is
earns no push: seismology.md §8.4 rule 2 ("< III: info only"), and the official apps of
messages.md §1.5 push only when the estimated intensity at the followed place reaches their
threshold (below it, in-app only); EMSC's LastQuake likewise pushes only where shaking was felt
strongly enough (messages.md §5). So a felt quake folded by the hourly budget is remembered in the
thread and named in the resident's next notice ("此前还有N次有感地震"), and the daily swarm
summary goes out only on a day that brought such unexplained felt shaking: at most one per
``summary_interval_h``, not within ``felt_in_swarm_interval_h`` of the last notice, never for
quakes nobody here felt (those stay on the notice page and the console). A type change has its
own advisory (type_changed), once per type.

The report and its guidance go out as ONE combined notice (kind + extra_kinds): a resident who reads
only one message must get both what happened and what to do, and Web Push replaces earlier notices
of the same Topic on the device, so a separate guidance notice could hide the report or vice versa.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any, Literal

from quakealert.core import intensity
from quakealert.core.intensity import FELT_DEGREE, csis_degree, epicentral_km, roman
from quakealert.errors import ConfigError
from quakealert.model import event_type_zh

Urgency = Literal["very-low", "low", "normal", "high"]
Trigger = Literal["new", "revised", "deleted", "retyped", "daily"]
REPORT_KINDS = ("quick_report", "official_report")
# What each CSIS degree means to the people there, for not-sent reasons: the popular labels of
# GB/T 17742 (messages.md §3, the same words as messages/glossary/zh.toml intensity.N.label;
# I 无感, II 微有感 "个别静止中的人有感觉", III 少有感 ...), in en GeoNet's words (messages.md §3).
FELT_WORDS: dict[int, tuple[str, str]] = {
    1: ("not felt", "无感"), 2: ("barely felt", "微有感"), 3: ("felt by few", "少有感"),
    4: ("felt by many", "多有感"), 5: ("wakes sleepers", "惊醒"), 6: ("frightening", "惊慌"),
    7: ("damages houses", "房屋损坏"), 8: ("damages buildings", "建筑物破坏"),
    9: ("houses collapse", "房屋倒塌"), 10: ("most houses collapse", "房屋普遍倒塌"),
    11: ("destruction", "毁灭"), 12: ("landscape changes", "山川易景"),
}


def felt_words(degree: int) -> tuple[str, str]:
    """(en, zh) of what a degree means to people, e.g. III → felt by few, 少有感."""
    return FELT_WORDS[min(max(degree, 1), 12)]


_LOWER: dict[str, Urgency] = {
    "high": "normal",
    "normal": "low",
    "low": "very-low",
    "very-low": "very-low",
}


@dataclass(frozen=True, slots=True)
class PolicyParams:
    """Notification thresholds; defaults cite seismology.md and messages.md, [K] ones are guesses."""

    felt_degree: int = intensity.FELT_DEGREE  # seismology.md §5.1: felt = III
    strong_degree: int = intensity.STRONG_DEGREE  # §5.1 possible damage ≥ VI; messages.md §8 K5
    strong_magnitude: float = 5.0  # messages.md §8 K5: "or M≥5 within ~100 km"
    strong_distance_km: float = 100.0
    sigma_factor: float = 1.0  # DESIGN.md: IPE plus one standard deviation
    larger_min_delta: float = 0.1  # [K] one catalogue step: a "larger event" is at least +0.1
    revision_magnitude: float = (
        0.3  # [K] above CENC auto-vs-official |ΔM| ≈ 0.25 (messages.md §0.4)
    )
    revision_distance_km: float = 10.0  # [K] above the ≈ 8 km mean auto-vs-official shift (§0.4)
    revision_time_s: float = 60.0  # [K] a change residents would see in the minute shown
    revision_depth_km: float = 20.0  # [K] ≈ 2× the 9 km mean auto-vs-official depth shift (§0.4)
    summary_interval_h: float = 24.0  # at most one swarm summary per day per thread
    swarm_active_h: float = 72.0  # [K] a swarm with no event for this long gets no summary
    advise_types: tuple[str, ...] = ("swarm",)  # types that earn one advisory (K4)
    quiet_start: str = "22:00"  # local time; quiet hours lower urgency, never hide felt guidance
    quiet_end: str = "07:00"
    quiet_utc_offset_h: float = 8.0  # Beijing time
    # [K] non-urgent notices (swarm typing, daily summary) due in quiet hours wait until then
    quiet_defer_until: str = "07:30"
    # [K] flood budget of a swarm thread: at most one short "that was a quake of the same swarm"
    # notice per this many hours; further felt quakes are counted by the next notice or summary
    felt_in_swarm_interval_h: float = 1.0
    # [K] Update budget: at most one Update per thread per this many minutes, however often a
    # drifting solution crosses the revision thresholds (issue 9 §5)
    update_interval_min: float = 30.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> PolicyParams:
        """Parameters from the ``[policy]`` config table; unknown keys are errors."""
        known = set(cls.__dataclass_fields__)
        unknown = set(section) - known
        if unknown:
            raise ConfigError(f"[policy] unknown keys: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key, raw in section.items():
            default = getattr(cls(), key)
            try:
                if isinstance(default, tuple):
                    values[key] = tuple(str(x) for x in raw)
                elif isinstance(default, (bool, str)):
                    values[key] = type(default)(raw)
                elif isinstance(default, int):
                    if isinstance(raw, float) and not raw.is_integer():
                        raise ValueError("expected a whole number")
                    values[key] = int(raw)
                else:
                    values[key] = float(raw)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"[policy] {key}: {err}") from err
        params = cls(**values)
        for key in ("quiet_start", "quiet_end", "quiet_defer_until"):
            try:
                time.fromisoformat(getattr(params, key))
            except ValueError as err:
                raise ConfigError(f"[policy] {key} must be HH:MM") from err
        if not 1 <= params.felt_degree <= params.strong_degree <= 12:
            raise ConfigError("[policy] need 1 <= felt_degree <= strong_degree <= 12")
        return params


@dataclass(frozen=True, slots=True)
class EventView:
    """One event as the policy sees it for one subscriber."""

    event_id: str
    origin_at: datetime
    latitude: float
    longitude: float
    depth_km: float | None
    magnitude: float
    status: Literal["automatic", "reviewed", "deleted"]
    intensity_upper: (
        float  # predicted mean + k·σ at the subscriber (intensity.upper_intensity_many)
    )
    distance_km: float  # epicentre to the subscriber

    @property
    def degree(self) -> int:
        """CSIS degree of the upper intensity."""
        return csis_degree(self.intensity_upper)


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """What the sequence engine says, seen from one subscriber: the lead maps engine output into it."""

    sequence_id: str
    # new event, revised event, deleted event, event retyped as a non-earthquake (explosion,
    # quarry blast, collapse...), or the daily swarm-summary tick
    trigger: Trigger
    event: EventView  # the event that arrived or changed (for "daily": the latest member)
    largest: EventView  # largest member so far, this one included
    sequence_type: str  # undetermined | swarm | mainshock_aftershock | foreshock_... | isolated
    type_provisional: bool = True
    type_official: bool = False  # True only when an authority stated the type
    member_count: int = 1
    last_event_at: datetime | None = None  # newest member's origin time
    event_type: str | None = None  # QuakeML EventType of a "retyped" event ("explosion"...)
    source: str = ""  # whose report retyped or deleted the event


@dataclass(frozen=True, slots=True)
class SubscriberView:
    """The part of a subscriber the policy needs (never the exact place)."""

    subscriber_id: str
    min_intensity: int | None = None  # CSIS degree; None = PolicyParams.felt_degree
    quiet_hours: tuple[str, str] | None = None  # overrides PolicyParams quiet window


@dataclass(frozen=True, slots=True)
class Told:
    """An event a thread has reported, with what it said and the notices that said it."""

    event_id: str
    origin_at: datetime
    latitude: float
    longitude: float
    depth_km: float | None
    magnitude: float
    status: str
    notice_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Folded:
    """Felt quakes of a swarm the hourly budget kept from a push: count and the largest."""

    count: int
    magnitude: float
    at: datetime  # origin time of the largest


@dataclass(frozen=True, slots=True)
class ThreadState:
    """One subscriber's thread for one sequence: what they have been told and when."""

    subscriber_id: str
    sequence_id: str
    told: tuple[Told, ...] = ()
    advised_type: str | None = None
    notice_ids: tuple[str, ...] = ()
    last_sent_at: datetime | None = None
    last_summary_at: datetime | None = None
    member_count_told: int = 0
    last_felt_at: datetime | None = None  # the last felt-in-swarm notice (flood budget)
    last_update_at: datetime | None = None  # the last Update (Update budget)
    # felt quakes the flood budget folded, not yet named in a notice: how many, the largest
    # magnitude and its origin time (issue 8 §4)
    folded_count: int = 0
    folded_magnitude: float | None = None
    folded_at: datetime | None = None

    @property
    def folded(self) -> Folded | None:
        """The folded felt quakes still to be named, if any."""
        if not self.folded_count or self.folded_magnitude is None or self.folded_at is None:
            return None
        return Folded(self.folded_count, self.folded_magnitude, self.folded_at)

    @property
    def max_magnitude(self) -> float | None:
        """Largest magnitude this subscriber has been told about (None before any report)."""
        return max((t.magnitude for t in self.told), default=None)

    def told_event(self, event_id: str) -> Told | None:
        """What the thread said about one event, if anything."""
        return next((t for t in self.told if t.event_id == event_id), None)


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to notify one subscriber, with what, and why."""

    send: bool
    kind: str | None
    msg_type: Literal["Alert", "Update", "Cancel"] | None
    urgency: Urgency
    reason_code: str
    reason_en: str
    reason_zh: str
    references: tuple[str, ...] = ()
    extra_kinds: tuple[str, ...] = ()  # guidance rendered into the same notice
    event_id: str = ""
    degree: int = 0  # predicted CSIS degree at the subscriber for this event
    deliver_at: datetime | None = None  # not before this instant (quiet hours); None = now
    folded: Folded | None = None  # folded felt quakes this notice names ("此前还有N次有感地震")

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every message kind in the notice, report first."""
        return ((self.kind,) if self.kind else ()) + self.extra_kinds


@dataclass(frozen=True, slots=True)
class Plan:
    """All decisions for one input, and the thread after the sent ones."""

    decisions: tuple[Decision, ...]
    thread: ThreadState | None
    notice_ids: tuple[str, ...] = field(default=())


TYPE_ZH = {
    "undetermined": "类型待定",
    "swarm": "震群型",
    "mainshock_aftershock": "主震-余震型",
    "foreshock_mainshock_aftershock": "前震-主震-余震型",
    "isolated": "孤立型",
    "doublet": "双震型",
}


def type_zh(sequence_type: str) -> str:
    """The Chinese operational name of a sequence type (seismology.md §1.1)."""
    return TYPE_ZH.get(sequence_type.replace("-", "_"), sequence_type)


def in_quiet_hours(now: datetime, start: str, end: str, utc_offset_h: float) -> bool:
    """Whether ``now`` falls in a local [start, end) window that may wrap midnight."""
    t = now.astimezone(timezone(timedelta(hours=utc_offset_h))).time()
    a, b = time.fromisoformat(start), time.fromisoformat(end)
    return (a <= t < b) if a <= b else (t >= a or t < b)


def quiet_release_at(now: datetime, until: str, utc_offset_h: float) -> datetime:
    """The next local ``until`` (e.g. 07:30) at or after ``now``, as an aware UTC instant."""
    tz = timezone(timedelta(hours=utc_offset_h))
    t = now.astimezone(tz)
    release = datetime.combine(t.date(), time.fromisoformat(until), tz)
    if release < t:
        release += timedelta(days=1)
    return release.astimezone(now.tzinfo or UTC)


def _no(code: str, en: str, zh: str, ev: EventView) -> Decision:
    return Decision(
        send=False,
        kind=None,
        msg_type=None,
        urgency="normal",
        reason_code=code,
        reason_en=en,
        reason_zh=zh,
        event_id=ev.event_id,
        degree=ev.degree,
    )


def _shaking(ev: EventView, threshold: int, params: PolicyParams) -> tuple[str, str]:
    k = f"{params.sigma_factor:g}"
    en = (
        f"M{ev.magnitude:.1f} at {ev.distance_km:.0f} km: predicted intensity {roman(ev.degree)} "
        f"(A12 mean+{k}σ = {ev.intensity_upper:.2f}), threshold {roman(threshold)}"
    )
    zh = (
        f"M{ev.magnitude:.1f}，距离{ev.distance_km:.0f}公里：预计烈度{roman(ev.degree, 'zh')}度"
        f"（A12均值+{k}σ={ev.intensity_upper:.2f}），阈值{roman(threshold, 'zh')}度"
    )
    return en, zh


def below_threshold_words(degree: int, threshold: int) -> tuple[str, str]:
    """(en, zh) opening of a "not sent, below the threshold" reason, worded by the degree: a
    degree III below a resident's own IV is 少有感, not 无感 (GB/T 17742, messages.md §3)."""
    en, zh = felt_words(degree)
    if degree < FELT_DEGREE:
        return f"Predicted {en} here ({roman(degree)})", f"本地预计{zh}（{roman(degree, 'zh')}度）"
    below_en = (f"Predicted {en} here ({roman(degree)}), below this subscriber's threshold "
                f"{roman(threshold)}")
    below_zh = f"本地预计{zh}（{roman(degree, 'zh')}度），低于该用户的通知阈值{roman(threshold, 'zh')}度"
    return below_en, below_zh


def _is_strong(ev: EventView, params: PolicyParams) -> bool:
    return ev.degree >= params.strong_degree or (
        ev.magnitude >= params.strong_magnitude and ev.distance_km <= params.strong_distance_km
    )


def _report(ctx: PolicyInput, params: PolicyParams, code: str, en: str, zh: str,
            folded: Folded | None = None) -> Decision:
    ev = ctx.event
    strong = _is_strong(ev, params)
    return Decision(
        send=True,
        kind="quick_report" if ev.status == "automatic" else "official_report",
        extra_kinds=("strong_guidance" if strong else "felt_guidance",),
        msg_type="Alert",
        urgency="high" if strong else "normal",  # felt guidance is never lowered in quiet hours
        reason_code=code,
        reason_en=en,
        reason_zh=zh,
        event_id=ev.event_id,
        degree=ev.degree,
        folded=folded,
    )


def _revision_changes(told: Told, ev: EventView, params: PolicyParams) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    dm = ev.magnitude - told.magnitude
    if abs(dm) >= params.revision_magnitude - 1e-9:
        out.append(
            (
                f"magnitude {told.magnitude:.1f} → {ev.magnitude:.1f}",
                f"震级{told.magnitude:.1f}→{ev.magnitude:.1f}",
            )
        )
    moved = epicentral_km(told.latitude, told.longitude, ev.latitude, ev.longitude)
    if moved >= params.revision_distance_km:
        out.append((f"epicentre moved {moved:.0f} km", f"震中移动{moved:.0f}公里"))
    dt = abs((ev.origin_at - told.origin_at).total_seconds())
    if dt >= params.revision_time_s:
        out.append((f"origin time changed by {dt:.0f} s", f"发震时刻变化{dt:.0f}秒"))
    if told.depth_km is not None and ev.depth_km is not None:
        dd = abs(ev.depth_km - told.depth_km)
        if dd >= params.revision_depth_km:
            out.append((f"depth changed by {dd:.0f} km", f"震源深度变化{dd:.0f}公里"))
    return out


def decide(
    ctx: PolicyInput,
    thread: ThreadState | None,
    subscriber: SubscriberView,
    params: PolicyParams,
    *,
    now: datetime,
) -> Decision:
    """The next notice for one subscriber about one sequence, or why there is none."""
    ev = ctx.event
    threshold = subscriber.min_intensity or params.felt_degree
    felt = ev.degree >= threshold
    quiet_start, quiet_end = subscriber.quiet_hours or (params.quiet_start, params.quiet_end)
    quiet = in_quiet_hours(now, quiet_start, quiet_end, params.quiet_utc_offset_h)
    shake_en, shake_zh = _shaking(ev, threshold, params)
    below_en, below_zh = below_threshold_words(ev.degree, threshold)
    told_any = thread is not None and bool(thread.told)

    def lowered(u: Urgency) -> Urgency:
        return _LOWER[u] if quiet else u

    quiet_en = " Quiet hours: urgency lowered." if quiet else ""
    quiet_zh = "（免打扰时段：紧急程度已降低。）" if quiet else ""
    # a non-urgent notice due in quiet hours waits until the morning (issue 8 §5)
    defer_at = (quiet_release_at(now, params.quiet_defer_until, params.quiet_utc_offset_h)
                if quiet else None)
    defer_en = f" It waits until {params.quiet_defer_until} local time." if quiet else ""
    defer_zh = f"（推迟至当地时间{params.quiet_defer_until}发送。）" if quiet else ""

    if ctx.trigger == "deleted":
        told = thread.told_event(ev.event_id) if thread else None
        if told is None:
            return _no(
                "deleted_not_told",
                f"Event {ev.event_id} was deleted; this subscriber was never told about it.",
                f"事件{ev.event_id}已被删除；未曾向该用户发送过相关信息。",
                ev,
            )
        return Decision(
            send=True,
            kind="cancel",
            msg_type="Cancel",
            urgency="normal",
            reason_code="event_deleted",
            reason_en=f"Event {ev.event_id} (M{told.magnitude:.1f}) was deleted by the agency: cancel what was sent.",
            reason_zh=f"测定机构删除了事件{ev.event_id}（{told.magnitude:.1f}级）：撤销已发送的信息。",
            references=told.notice_ids,
            event_id=ev.event_id,
            degree=ev.degree,
        )

    if ctx.trigger == "retyped":
        # An earthquake notice about what the agency now calls an explosion (CENC 爆破/疑爆,
        # USGS "quarry blast") was wrong: a CAP Cancel with <references> (messages.md §8 K7:
        # "this was not an earthquake").
        told = thread.told_event(ev.event_id) if thread else None
        kind_en = ctx.event_type or "not an earthquake"
        kind_zh = event_type_zh(ctx.event_type) if ctx.event_type else "非天然地震"
        by = f" by {ctx.source}" if ctx.source else ""
        by_zh = f"（{ctx.source}）" if ctx.source else ""
        if told is None:
            return _no(
                "retyped_not_told",
                f"Event {ev.event_id} was retyped as {kind_en}{by}; this subscriber was never "
                "told about it.",
                f"事件{ev.event_id}已改判为{kind_zh}{by_zh}；未曾向该用户发送过相关信息。",
                ev,
            )
        return Decision(
            send=True,
            kind="cancel",
            msg_type="Cancel",
            urgency="normal",
            reason_code="event_not_earthquake",
            reason_en=f"Event {ev.event_id} (M{told.magnitude:.1f}) was retyped as {kind_en}{by}, "
                      "not an earthquake: cancel what was sent.",
            reason_zh=f"事件{ev.event_id}（{told.magnitude:.1f}级）已改判为{kind_zh}{by_zh}，"
                      "不是天然地震：撤销已发送的地震信息。",
            references=told.notice_ids,
            event_id=ev.event_id,
            degree=ev.degree,
        )

    if ctx.trigger == "revised" and thread is not None:
        told = thread.told_event(ev.event_id)
        if told is not None:
            changes = _revision_changes(told, ev, params)
            became_official = told.status == "automatic" and ev.status == "reviewed"
            what = "automatic → official; " if became_official else ""
            what_zh = "自动测定→正式测定；" if became_official else ""
            if not changes:
                return _no(
                    "revision_minor",
                    f"Revision of {ev.event_id} ({what}M{told.magnitude:.1f} → M{ev.magnitude:.1f}) is below the "
                    f"update thresholds (ΔM {params.revision_magnitude:g}, {params.revision_distance_km:g} km, "
                    f"{params.revision_time_s:g} s, depth {params.revision_depth_km:g} km).",
                    f"事件{ev.event_id}的修订（{what_zh}{told.magnitude:.1f}级→{ev.magnitude:.1f}级）未达到更新阈值"
                    f"（震级{params.revision_magnitude:g}、位置{params.revision_distance_km:g}公里、"
                    f"时间{params.revision_time_s:g}秒、深度{params.revision_depth_km:g}公里）。",
                    ev,
                )
            last_update = thread.last_update_at
            if last_update is not None and (
                    now - last_update).total_seconds() < params.update_interval_min * 60:
                ago = (now - last_update).total_seconds() / 60
                return _no(
                    "update_rate_limited",
                    f"Revision of {ev.event_id} ({what}{'; '.join(c[0] for c in changes)}) waits: the "
                    f"last Update went out {ago:.0f} min ago (at most one per "
                    f"{params.update_interval_min:g} min); a later revision is compared with what "
                    "the subscriber was told.",
                    f"事件{ev.event_id}的修订（{what_zh}{'；'.join(c[1] for c in changes)}）暂缓："
                    f"{ago:.0f}分钟前刚发送过更新（每{params.update_interval_min:g}分钟最多一次）；"
                    "之后的修订将与已告知的内容比较。",
                    ev,
                )
            return Decision(
                send=True,
                kind="update",
                msg_type="Update",
                urgency=lowered("normal"),
                reason_code="revision_matters",
                reason_en=f"Revision of {ev.event_id} ({what}{'; '.join(c[0] for c in changes)}) changes what "
                f"the subscriber was told.{quiet_en}",
                reason_zh=f"事件{ev.event_id}的修订（{what_zh}{'；'.join(c[1] for c in changes)}）改变了已告知的内容。{quiet_zh}",
                references=told.notice_ids,
                event_id=ev.event_id,
                degree=ev.degree,
            )

    if ctx.trigger == "daily":
        if not told_any or thread is None:
            return _no(
                "summary_no_thread",
                "Daily summary: this subscriber has not been notified about this sequence.",
                "每日动态：该用户未收到过此序列的信息。",
                ev,
            )
        if ctx.sequence_type in params.advise_types and thread.advised_type != ctx.sequence_type:
            pass  # the type advisory comes first; handled below
        elif ctx.sequence_type != "swarm":
            return _no(
                "summary_not_swarm",
                f"Daily summary: the sequence is '{ctx.sequence_type}', not a swarm.",
                f"每日动态：该序列类型为“{type_zh(ctx.sequence_type)}”，不是震群。",
                ev,
            )
        else:
            quiet_for_h = (now - (ctx.last_event_at or ev.origin_at)).total_seconds() / 3600
            since = thread.last_summary_at or thread.last_sent_at or now
            since_h = (now - since).total_seconds() / 3600
            last_h = (now - (thread.last_sent_at or since)).total_seconds() / 3600
            folded = thread.folded
            if folded is None:
                return _no(
                    "summary_nothing_felt",
                    "Daily summary: no quake felt here has gone untold since the last notice; "
                    "quakes not felt here are not pushed (seismology.md §8.4 rule 2).",
                    "每日动态：上次通知以来，本地没有未告知的有感地震；本地无感的地震不推送。",
                    ev,
                )
            if quiet_for_h > params.swarm_active_h:
                return _no(
                    "summary_swarm_quiet",
                    f"Daily summary: no event for {quiet_for_h:.0f} h (> {params.swarm_active_h:g} h); the swarm is not active.",
                    f"每日动态：已{quiet_for_h:.0f}小时无地震（超过{params.swarm_active_h:g}小时），震群不活跃。",
                    ev,
                )
            if since_h < params.summary_interval_h:
                return _no(
                    "summary_too_soon",
                    f"Daily summary: last swarm advisory or summary {since_h:.1f} h ago (< {params.summary_interval_h:g} h).",
                    f"每日动态：距上次震群提示或动态{since_h:.1f}小时（不足{params.summary_interval_h:g}小时）。",
                    ev,
                )
            if last_h < params.felt_in_swarm_interval_h:
                return _no(
                    "summary_too_soon",
                    f"Daily summary: the last notice went out {last_h * 60:.0f} min ago (at most "
                    f"one per {params.felt_in_swarm_interval_h:g} h).",
                    f"每日动态：{last_h * 60:.0f}分钟前刚发送过通知（每"
                    f"{params.felt_in_swarm_interval_h:g}小时最多一次）。",
                    ev,
                )
            return Decision(
                send=True,
                kind="swarm_advisory",
                msg_type="Update",
                urgency=lowered("low"),
                reason_code="daily_summary",
                reason_en=f"Daily swarm summary: {folded.count} felt quake(s) here (largest "
                f"M{folded.magnitude:.1f}) not yet told, held by the hourly budget; last swarm "
                f"advisory or summary {since_h:.0f} h ago; swarm active (last event {quiet_for_h:.0f} h ago)."
                f"{quiet_en}{defer_en}",
                reason_zh=f"震群每日动态：本地有{folded.count}次有感地震（最大{folded.magnitude:.1f}级）"
                f"因每小时限额未单独告知；距上次震群提示或动态{since_h:.0f}小时；震群仍活跃"
                f"（最近一次地震在{quiet_for_h:.0f}小时前）。{quiet_zh}{defer_zh}",
                references=thread.notice_ids[-1:],
                event_id=ev.event_id,
                degree=ev.degree,
                deliver_at=defer_at,
                folded=folded,
            )

    if not told_any or thread is None:
        if ctx.trigger == "daily":
            return _no(
                "summary_no_thread",
                "Daily summary: nothing sent in this sequence yet.",
                "每日动态：此序列尚未发送信息。",
                ev,
            )
        if not felt:
            return _no("below_threshold", f"{below_en}: {shake_en}.", f"{below_zh}：{shake_zh}。", ev)
        return _report(
            ctx,
            params,
            "first_felt",
            f"First felt event of the sequence: {shake_en}.",
            f"序列中首次有感地震：{shake_zh}。",
        )

    told_max = thread.max_magnitude or 0.0
    larger = ctx.trigger != "daily" and ev.magnitude >= told_max + params.larger_min_delta - 1e-9
    if larger and felt:
        return _report(
            ctx,
            params,
            "larger_event",
            f"Larger than the M{told_max:.1f} already notified: {shake_en}.",
            f"大于已通知的{told_max:.1f}级地震：{shake_zh}。",
            thread.folded,
        )
    if ctx.sequence_type in params.advise_types and thread.advised_type != ctx.sequence_type:
        official = "official" if ctx.type_official else "automatic, provisional"
        official_zh = "官方判定" if ctx.type_official else "自动初判"
        return Decision(
            send=True,
            kind="swarm_advisory",
            msg_type="Update",
            urgency=lowered("normal"),
            reason_code="type_changed",
            reason_en=f"Sequence type is now '{ctx.sequence_type}' ({official}); one advisory per type.{quiet_en}{defer_en}",
            reason_zh=f"序列类型变为“{type_zh(ctx.sequence_type)}”（{official_zh}）；每种类型只提示一次。{quiet_zh}{defer_zh}",
            references=thread.notice_ids[-1:],
            event_id=ev.event_id,
            degree=ev.degree,
            deliver_at=defer_at,
            folded=thread.folded,
        )
    if ctx.trigger == "daily":
        return _no("summary_not_due", "Daily summary: nothing due.", "每日动态：无需发送。", ev)
    parts_en = [f"Already told about M{told_max:.1f}"]
    parts_zh = [f"已通知{told_max:.1f}级地震"]
    if thread.advised_type:
        parts_en.append(f"the {thread.advised_type} advisory was sent")
        parts_zh.append(f"已发送{type_zh(thread.advised_type)}提示")
    if thread.advised_type == "swarm":
        parts_en.append("the daily swarm summary will count this event")
        parts_zh.append("每日震群动态将计入此次地震")
    if felt and ctx.sequence_type == "swarm" and ctx.trigger == "new":
        # a quake the resident felt is always explained, within the swarm's flood budget
        last = thread.last_felt_at
        since_min = (now - last).total_seconds() / 60 if last is not None else None
        if since_min is None or since_min >= params.felt_in_swarm_interval_h * 60:
            folded = thread.folded
            more_en = (f"; it also names {folded.count} earlier felt quake(s) the hourly budget "
                       "held" if folded else "")
            more_zh = f"；并告知此前因每小时限额未单独通知的{folded.count}次有感地震" if folded else ""
            d = _report(
                ctx, params, "felt_in_swarm",
                f"Felt ({shake_en}) and part of the swarm already notified (largest told "
                f"M{told_max:.1f}): a short notice explains the shaking{more_en}.",
                f"有感（{shake_zh}），属已通知的震群（已通知最大{told_max:.1f}级）：发送简短说明{more_zh}。",
                folded,
            )
            return replace(d, msg_type="Update", references=thread.notice_ids[-1:],
                           urgency="high" if d.urgency == "high" else "normal")
        return _no(
            "felt_folded",
            f"Felt ({shake_en}), but a notice about this swarm went out {since_min:.0f} min ago "
            f"(at most one per {params.felt_in_swarm_interval_h:g} h); the resident's next notice "
            "names it.",
            f"有感（{shake_zh}），但{since_min:.0f}分钟前已发送该震群的信息（每"
            f"{params.felt_in_swarm_interval_h:g}小时最多一次）；下一条通知将告知此次地震。",
            ev,
        )
    if not felt:
        return _no(
            "below_threshold",
            f"{below_en}: {shake_en}. " + "; ".join(parts_en) + ".",
            f"{below_zh}：{shake_zh}。" + "；".join(parts_zh) + "。",
            ev,
        )
    return _no(
        "not_larger",
        f"Felt but not larger ({shake_en}): " + "; ".join(parts_en) + ".",
        f"有感但不大于已通知的地震（{shake_zh}）：" + "；".join(parts_zh) + "。",
        ev,
    )


def advance(
    thread: ThreadState | None,
    ctx: PolicyInput,
    decision: Decision,
    subscriber: SubscriberView,
    *,
    notice_id: str,
    now: datetime,
) -> ThreadState | None:
    """The thread after a sent decision (unchanged when nothing was sent)."""
    if not decision.send:
        return thread
    t = thread or ThreadState(subscriber_id=subscriber.subscriber_id, sequence_id=ctx.sequence_id)
    ev = ctx.event
    told = t.told
    if decision.kind in REPORT_KINDS:
        told = told + (
            Told(
                ev.event_id,
                ev.origin_at,
                ev.latitude,
                ev.longitude,
                ev.depth_km,
                ev.magnitude,
                ev.status,
                (notice_id,),
            ),
        )
    elif decision.kind == "update":
        told = tuple(
            Told(
                ev.event_id,
                ev.origin_at,
                ev.latitude,
                ev.longitude,
                ev.depth_km,
                ev.magnitude,
                ev.status,
                x.notice_ids + (notice_id,),
            )
            if x.event_id == ev.event_id
            else x
            for x in told
        )
    elif decision.kind == "cancel":
        told = tuple(x for x in told if x.event_id != ev.event_id)
    advised = ctx.sequence_type if decision.kind == "swarm_advisory" else t.advised_type
    summary_at = now if decision.kind == "swarm_advisory" else t.last_summary_at
    return replace(
        t,
        told=told,
        advised_type=advised,
        notice_ids=t.notice_ids + (notice_id,),
        last_sent_at=now,
        last_summary_at=summary_at,
        member_count_told=max(t.member_count_told, ctx.member_count),
        last_felt_at=now if decision.kind in REPORT_KINDS else t.last_felt_at,
        last_update_at=now if decision.kind == "update" else t.last_update_at,
        folded_count=0 if decision.folded else t.folded_count,
        folded_magnitude=None if decision.folded else t.folded_magnitude,
        folded_at=None if decision.folded else t.folded_at,
    )


def fold(thread: ThreadState, ev: EventView) -> ThreadState:
    """The thread after a felt quake the hourly budget kept from a push: remembered, so the
    resident's next notice names it (issue 8 §4)."""
    larger = thread.folded_magnitude is None or ev.magnitude > thread.folded_magnitude
    return replace(
        thread,
        folded_count=thread.folded_count + 1,
        folded_magnitude=ev.magnitude if larger else thread.folded_magnitude,
        folded_at=ev.origin_at if larger else thread.folded_at,
    )


def plan(
    ctx: PolicyInput,
    thread: ThreadState | None,
    subscriber: SubscriberView,
    params: PolicyParams,
    *,
    now: datetime,
    notice_id: Callable[[Decision], str],
    max_notices: int = 3,
) -> Plan:
    """Decide until nothing more is due: e.g. the first felt report, then the swarm advisory.

    Records the "not sent" decision only when nothing was sent, so each input leaves either the
    notices it caused or exactly one reason why there were none.
    """
    decisions: list[Decision] = []
    ids: list[str] = []
    for _ in range(max_notices):
        d = decide(ctx, thread, subscriber, params, now=now)
        if not d.send:
            if not decisions:
                decisions.append(d)
                if d.reason_code == "felt_folded" and thread is not None:
                    thread = fold(thread, ctx.event)
            break
        nid = notice_id(d)
        decisions.append(d)
        ids.append(nid)
        thread = advance(thread, ctx, d, subscriber, notice_id=nid, now=now)
    return Plan(decisions=tuple(decisions), thread=thread, notice_ids=tuple(ids))
