"""`quakealert drill FILE`: replay a catalogue through the whole pipeline, as an exercise.

The drill runs the real pipeline (association, sequences, classification, policy, rendering,
outbox) against a throw-away SQLite store, never the one in the settings. Every notice is an
exercise (CAP status Exercise, titles 【演练】/[EXERCISE]), and every delivery channel is replaced
by a recorder that counts what would have been delivered: nothing leaves the machine.

Residents come from the office's bulk-import CSV (``--subscribers``) or, by default, one resident
at each county/district seat of messages/places.toml (zh + bo) plus one in Chengdu as a far-away
control. The report says what would have been sent, when, to how many residents per area, what
was not sent and why, how long the pipeline took, and how the sequence type evolved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import ClientSession
from lxml import etree

from quakealert.api.cap import cap_for_notice
from quakealert.channels import CHANNELS
from quakealert.channels.base import DeliveryResult, Recipient
from quakealert.cli.subscribers import parse_csv
from quakealert.config import Settings, load_settings
from quakealert.core.cap import CAP_NS
from quakealert.core.durations import say_duration
from quakealert.core.render import MessageCatalog, default_catalog
from quakealert.errors import NotFound, QuakealertError, SourceError
from quakealert.formats.catalog import parse_columns, read_catalog_file
from quakealert.formats.cenc import BEIJING_OFFSET_H
from quakealert.formats.rows import parse_utc
from quakealert.model import Event, Message, Notice, Report
from quakealert.service.dispatch import Outbox, OutboxSettings
from quakealert.service.pipeline import Pipeline
from quakealert.store import open_file
from quakealert.store.base import Store
from quakealert.store.notices import StoredNotice
from quakealert.store.subscribers import NewSubscriber, Places, coarsen, load_places

BEIJING = timezone(timedelta(hours=BEIJING_OFFSET_H))
SEAT_KINDS = ("county", "district")
CONTROL_KEY = "control-chengdu"
CONTROL_PLACE = (30.66, 104.07)  # Chengdu, about 1,150 km from Lhasa: must never be notified
CONTROL_NAMES = ("成都（对照）", "Chengdu (control)")
NO_AREA_NAMES = ("无所属县区", "no county/district seat within 100 km")
# RFC 2606: .invalid never resolves, so even a misrouted drill delivery could not reach anyone.
DRILL_TARGET = "https://drill.invalid/{key}"
# Without --until the clock runs on past the last event so its 30 min and 24 h rules play out.
DEFAULT_AFTER = timedelta(hours=24, minutes=1)
QUIET_DEFER_MAX = timedelta(hours=10)  # longest quiet-hours wait of a non-urgent notice
MAX_GAP_S = 10.0  # --speed N: a quiet gap never takes longer than this on the wall clock
STEP_S = 0.05  # --speed N: how often the pipeline clock is moved on during a gap
CAP_SENDER = "quakealert-drill@localhost"  # unless [cap] sender is configured
BANNER = "*** EXERCISE — 演练 — a drill, not a real earthquake; nothing was sent ***"


class DrillInputError(QuakealertError):
    """A drill input (catalogue file, subscriber CSV, --keep directory) cannot be used."""


# -- residents ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Population:
    """Who the drill notifies, how they are filed into areas, and the areas' names (zh, en)."""

    subscribers: tuple[NewSubscriber, ...]
    places: Places
    names: dict[str, tuple[str, str]]
    description: str
    rejected: tuple[str, ...] = ()
    description_zh: str = ""


def area_names(catalog: MessageCatalog) -> dict[str, tuple[str, str]]:
    """Area key -> (zh, en) for every place in the message catalogue."""
    return {k: (p.zh, p.en) for k, p in catalog.places.items()}


def default_population(catalog: MessageCatalog | None = None) -> Population:
    """One zh+bo resident at each county/district seat, plus one in Chengdu as a far control."""
    cat = catalog or default_catalog()
    seats = [p for p in cat.places.values() if p.kind in SEAT_KINDS]
    points = [(p.key, p.lat, p.lon) for p in seats] + [(CONTROL_KEY, *CONTROL_PLACE)]
    subs = tuple(
        NewSubscriber(coarsen(lat), coarsen(lon), ("zh", "bo"), "webhook",
                      DRILL_TARGET.format(key=key), secret="drill-never-sent-" + key)
        for key, lat, lon in points)
    places = Places(tuple(k for k, _, _ in points), np.array([p[1] for p in points]),
                    np.array([p[2] for p in points]))
    names = {**area_names(cat), CONTROL_KEY: CONTROL_NAMES}
    return Population(subs, places, names,
                      f"default drill population: one resident (zh+bo) at each of {len(seats)} "
                      "county/district seats, plus one in Chengdu as a far-away control",
                      description_zh=f"默认演练居民：{len(seats)}个县（区）政府驻地各一人（中文、藏文），"
                                     "另在成都设一人作为远处对照")


def csv_population(path: Path, *, allow_insecure: bool, catalog: MessageCatalog | None = None
                   ) -> Population:
    """Residents from the office's bulk-import CSV (same columns, same validation)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DrillInputError(f"cannot read subscribers {path}: {err}") from None
    good, bad = parse_csv(text, allow_insecure=allow_insecure)
    if not good:
        raise DrillInputError(f"{path}: no usable subscriber rows ({'; '.join(bad[:3])})")
    return Population(tuple(s for _, s in good), load_places(),
                      area_names(catalog or default_catalog()),
                      f"{len(good)} residents from {path.name}", tuple(bad),
                      description_zh=f"{path.name}中的{len(good)}名居民")


# -- recorder channels and a timed pipeline -------------------------------------------------


@dataclass(slots=True)
class RecorderChannel:
    """Stands in for a delivery channel: records what would be delivered and sends nothing."""

    name: str
    delivered: list[tuple[str, int]] = field(default_factory=list)  # (notice id, subscriber id)

    async def deliver(self, notice: Notice, recipient: Recipient, session: ClientSession, *,
                      now: datetime) -> DeliveryResult:
        self.delivered.append((notice.id, recipient.subscriber_id))
        return DeliveryResult(notice_id=notice.id, channel=self.name, target="recorder", ok=True)


@dataclass(frozen=True, slots=True)
class NoticeTiming:
    """Wall-clock facts about one notice (perf_counter seconds)."""

    trigger: str  # new | revised | deleted | tick (a time rule fell due)
    taken_up: float  # the event's ingest began, or the pipeline started evaluating the tick
    enqueued: float
    ingested: float | None  # the latest ingest of the notice's event before it was enqueued


class TimedPipeline(Pipeline):
    """The pipeline, noting per notice when its trigger was taken up and when it was enqueued.

    ``evaluate`` and ``apply`` return only after their notices are in the outbox, so the time
    they return is the enqueue time.
    """

    def __init__(self, store: Store, settings: Settings, *,
                 scenario_timeouts: bool = True) -> None:
        super().__init__(store, settings, exercise=True)
        # False: held notices wait on the wall clock, as in the daemon's replay
        self.scenario_timeouts = scenario_timeouts
        self.ingested_at: dict[str, float] = {}
        self.timings: dict[str, NoticeTiming] = {}
        self.held: dict[str, float] = {}  # notice id -> approval timeout it was released after

    def release_due(self, at: datetime) -> None:
        """Release the held notices whose timeout has run out by scenario time ``at``.

        Live, the timeout releases a held notice long before the next day's summary; a drill
        played faster than real time must do the same at the same scenario moment, or the
        next summary would find it still pending and withdraw it as superseded.
        """
        for row in self.store.notices.pending_approval():
            rule = self.approvals.get(row["kind"].split("+")[0])
            timeout = rule.timeout_s if rule else 0.0
            if row["created_at"] + timeout <= at.timestamp():
                self.store.notices.set_notice_state(row["id"], "released", at=datetime.now(UTC),
                                    reason=f"auto-released after {timeout:.0f} s without a duty"
                                           " decision (pre-approved template)")
                self.held[row["id"]] = timeout

    def evaluate(self, seq_id: str, at: datetime, trigger: str, event: Event | None, *,
                 policy: bool = True) -> list[str]:
        if self.scenario_timeouts:
            self.release_due(at)
        started = time.perf_counter()
        ids = super().evaluate(seq_id, at, trigger, event, policy=policy)
        self._note(ids, trigger, started, time.perf_counter())
        return ids

    def apply(self, event: Event, trigger: str, *, at: datetime) -> list[str]:
        started = time.perf_counter()
        ids = super().apply(event, trigger, at=at)
        self._note([i for i in ids if i not in self.timings], trigger, started,
                   time.perf_counter())
        return ids

    def _note(self, ids: list[str], trigger: str, started: float, done: float) -> None:
        for nid in ids:
            ingested = self.ingested_at.get(self.store.notices.load_notice(nid).event_id)
            taken_up = ingested if trigger != "tick" and ingested is not None else started
            self.timings[nid] = NoticeTiming(trigger, taken_up, done, ingested)


# -- playing --------------------------------------------------------------------------------


@dataclass(slots=True)
class Played:
    """What the replay did: reports fed, reports left out (after --until), the clock's end."""

    fed: int = 0
    after_until: int = 0
    until: datetime | None = None
    wall_s: float = 0.0


async def play(pipeline: TimedPipeline, reports: list[Report], *, until: datetime, speed: float,
               deliver: Callable[[], Awaitable[None]],
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> Played:
    """Feed the reports in origin order at scenario time, then run the clock on to ``until``.

    ``speed`` 0 plays as fast as possible; N > 0 waits (gap / N) seconds between moments, at
    most MAX_GAP_S, moving the pipeline clock on meanwhile so time rules fire at their moment.
    """
    store = pipeline.store
    started = time.perf_counter()
    todo = sorted((r for r in reports if r.origin_at <= until),
                  key=lambda r: (r.origin_at, r.source, r.source_id))
    out = Played(after_until=len(reports) - len(todo), until=until)
    scenario_at = todo[0].origin_at if todo else until

    async def wait_for(target: datetime) -> None:
        nonlocal scenario_at
        span = target - scenario_at
        wall_s = min(span.total_seconds() / speed, MAX_GAP_S)
        begun = clock()
        while True:
            frac = 1.0 if wall_s <= 0 else min(1.0, (clock() - begun) / wall_s)
            pipeline.advance(scenario_at + span * frac)
            await deliver()
            if frac >= 1.0:
                break
            await sleep(min(STEP_S, max(wall_s - (clock() - begun), 0.0)))
        scenario_at = target

    for report in todo:
        if speed > 0 and report.origin_at > scenario_at:
            await wait_for(report.origin_at)
        # Time rules due before this quake run first, as a live daemon would have run them
        # meanwhile: the event's latency below is its own work, not the catching up.
        pipeline.advance(report.origin_at)
        await deliver()
        taken = time.perf_counter()
        result = store.ingest([report], now=report.origin_at)
        for event_id in result.changed:
            pipeline.ingested_at[event_id] = taken
        # The daemon's path (the work queue): events far from every resident and region are
        # sequenced and typed without the resident policy (Pipeline.prioritise, process_far).
        pipeline.process_work(now=report.origin_at)
        scenario_at = max(scenario_at, report.origin_at)
        out.fed += 1
        await deliver()
    if speed > 0 and until > scenario_at:
        await wait_for(until)
    pipeline.advance(until)
    await deliver()
    out.wall_s = time.perf_counter() - started
    return out


async def drain(outbox: Outbox, now: datetime) -> None:
    """Deliver every due outbox row through the recorders."""
    while await outbox.drain_once(now):
        pass


def release_held(pipeline: Pipeline) -> tuple[float, list[str]]:
    """Notices waiting for a duty officer: release them as their timeout would (drill only)."""
    longest = max((r.timeout_s for r in pipeline.approvals.values()), default=0.0)
    if not longest:
        return 0.0, []
    later = datetime.now(UTC) + timedelta(seconds=longest)
    return longest, pipeline.release_expired(later)


# -- CAP ------------------------------------------------------------------------------------


def cap_for(store: Store, stored: StoredNotice, *, sender: str) -> bytes | None:
    """The CAP 1.2 message the feed would serve for a notice (None when it cannot be built)."""
    try:
        return cap_for_notice(store, stored, sender=sender)
    except NotFound:
        return None


def cap_status(xml: bytes | None) -> str | None:
    """The <status> of a CAP message."""
    if xml is None:
        return None
    return etree.fromstring(xml).findtext(f"{{{CAP_NS}}}status")


# -- the report -----------------------------------------------------------------------------


def times(at: datetime) -> dict[str, str]:
    """One instant as UTC and Beijing time (ISO 8601)."""
    return {"utc": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "beijing": at.astimezone(BEIJING).isoformat()}


def _area(key: str | None, names: dict[str, tuple[str, str]], residents: int) -> dict[str, Any]:
    zh, en = names.get(key, (key, key)) if key is not None else NO_AREA_NAMES
    return {"key": key, "zh": zh, "en": en, "residents": residents}


def _event(e: Event) -> dict[str, Any]:
    return {"id": e.id, "origin": times(e.origin_at), "magnitude": e.magnitude,
            "mag_type": e.mag_type, "latitude": e.latitude, "longitude": e.longitude,
            "depth_km": e.depth_km, "place": e.place, "source": e.preferred_source}


HAN = re.compile(r"[\u4e00-\u9fff]")  # CJK unified ideographs: Chinese, never Tibetan


def _same_text(a: Message, b: Message) -> bool:
    """The same words, whatever the spacing and the exercise prefix."""
    def norm(m: Message) -> str:
        return "".join(f"{m.title}{m.body}".replace("【演练】", "").split())

    return norm(a) == norm(b)


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def _max(a: float | None, b: float) -> float:
    return b if a is None else max(a, b)


def build_report(store: Store, pipeline: TimedPipeline, recorders: dict[str, RecorderChannel],
                 population: Population, *, file: str, skipped: list[str], played: Played,
                 speed: float, held_s: float, held: list[str], cap_dir: Path | None = None,
                 sender: str = CAP_SENDER) -> dict[str, Any]:
    """Everything the drill found, as JSON-ready values."""
    names = population.names
    events = {e.id: e for e in store.events(order="time-asc", limit=None)}
    recorded: dict[str, Counter[str]] = defaultdict(Counter)
    for name, rec in recorders.items():
        for nid, _ in rec.delivered:
            recorded[nid][name] += 1

    notices: dict[tuple[datetime, str, str, str], dict[str, Any]] = {}
    for stored in store.notices.list_notices(limit=None, newest_first=False):
        n = stored.notice
        rows = store.views.notice_sent_areas(n.id)
        timing = pipeline.timings.get(n.id)
        event = events.get(n.event_id)
        xml = cap_for(store, stored, sender=sender)
        if cap_dir is not None and xml is not None:
            cap_dir.mkdir(parents=True, exist_ok=True)
            (cap_dir / f"{n.id}.xml").write_bytes(xml)
        # One notice per (area, degree): residents see one dispatch, listed area by area.
        key = (n.created_at, n.kind, n.msg_type, n.event_id)
        g = notices.get(key)
        if g is None:
            g = notices[key] = {
                "at": times(n.created_at), "kind": n.kind, "msg_type": n.msg_type,
                "urgency": n.urgency, "exercise": n.exercise, "cap_status": cap_status(xml),
                "sequence_id": n.sequence_id, "event": _event(event) if event else {"id": n.event_id},
                "reasons": [], "residents": 0, "areas": [], "channels": Counter(),
                "titles": {}, "texts": [], "bo_same_as_zh": [], "notice_ids": [],
                "held_for_approval_s": None,
                "latency": {"scenario_delay_s": (n.created_at - event.origin_at).total_seconds()
                            if event else None, "trigger": None, "processing_ms": None,
                            "since_ingest_ms": None}}
        g["notice_ids"].append(n.id)
        g["exercise"] = g["exercise"] and n.exercise
        if cap_status(xml) != g["cap_status"]:
            g["cap_status"] = "mixed"
        for m in n.messages:
            titles = g["titles"].setdefault(m.lang, [])
            if m.title not in titles:
                titles.append(m.title)
        area_keys = [r["area"] for r in rows]
        for m in n.messages:
            text = next((x for x in g["texts"] if (x["lang"], x["title"], x["body"],
                                                    x["push_title"], x["push_body"])
                         == (m.lang, m.title, m.body, m.push_title, m.push_body)), None)
            if text is None:
                # what the phone shows (Message.push_title/push_body) beside the full notice
                text = {"lang": m.lang, "title": m.title, "body": m.body,
                        "push_title": m.push_title, "push_body": m.push_body, "areas": []}
                g["texts"].append(text)
            text["areas"] += [_area(k, names, 0) for k in area_keys]
        by_lang = {m.lang: m for m in n.messages}
        if "bo" in by_lang and "zh" in by_lang and _same_text(by_lang["bo"], by_lang["zh"]):
            # Tibetan is Tibetan (DESIGN.md): Chinese under a bo label is a defect to fix
            g["bo_same_as_zh"].append(n.id)
        if "bo" in by_lang:
            han = sum(1 for line in by_lang["bo"].body.splitlines() if HAN.search(line))
            g["bo_chinese_lines"] = max(g.get("bo_chinese_lines", 0), han)
        g["channels"].update(recorded[n.id])
        if n.id in held:
            g["held_for_approval_s"] = held_s
        elif n.id in pipeline.held:
            g["held_for_approval_s"] = pipeline.held[n.id]
        lat = g["latency"]
        if timing is not None:
            lat["trigger"] = timing.trigger
            lat["processing_ms"] = _max(lat["processing_ms"],
                                        _ms(timing.enqueued - timing.taken_up))
            if timing.ingested is not None:
                lat["since_ingest_ms"] = _max(lat["since_ingest_ms"],
                                              _ms(timing.enqueued - timing.ingested))
        for r in rows:
            why = sorted(c for c in (r["why"] or "").split(",") if c)
            g["residents"] += int(r["n"])
            g["areas"].append({**_area(r["area"], names, int(r["n"])), "reasons": why,
                               "reason_zh": r["why_zh"], "reason_en": r["why_en"],
                               "notice_id": n.id})
            g["reasons"] = sorted(set(g["reasons"]) | set(why))
    sent = []
    # Scenario order: list_notices orders by release time, which is wall-clock time here.
    for _, g in sorted(notices.items(), key=lambda kv: kv[0][0]):
        g["areas"].sort(key=lambda a: str(a["key"]))
        g["channels"] = dict(sorted(g["channels"].items()))
        g["titles"] = {lang: " | ".join(t) for lang, t in g["titles"].items()}
        order = {"zh": 0, "bo": 1, "en": 2}
        g["texts"].sort(key=lambda x: (order.get(x["lang"], 9), x["title"], x["body"]))
        for x in g["texts"]:
            seen: dict[str | None, dict[str, Any]] = {}
            for a in x["areas"]:
                seen.setdefault(a["key"], a)
            x["areas"] = sorted(seen.values(), key=lambda a: str(a["key"]))
        sent.append(g)

    # A reason repeated at many moments (each daily-summary tick) is one line with its span.
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in store.views.not_sent_reasons():
        reason_key = (r["event_id"], r["reason_code"], r["reason_en"])
        g = groups.get(reason_key)
        if g is None:
            e = events.get(r["event_id"])
            g = groups[reason_key] = {
                "first": r["at"], "last": r["at"], "moments": set(),
                "event": _event(e) if e else {"id": r["event_id"]},
                "reason_code": r["reason_code"], "reason_en": r["reason_en"],
                "reason_zh": r["reason_zh"], "decisions": 0, "areas": Counter()}
        g["last"] = r["at"]
        g["moments"].add(r["at"])
        g["decisions"] += int(r["n"])
        g["areas"][r["area"]] += int(r["n"])
    not_sent = []
    for g in groups.values():
        not_sent.append({
            **g, "first": times(datetime.fromtimestamp(g["first"], UTC)),
            "last": times(datetime.fromtimestamp(g["last"], UTC)), "moments": len(g["moments"]),
            "areas": [_area(k, names, n) for k, n in sorted(g["areas"].items(),
                                                            key=lambda kv: str(kv[0]))]})

    # Only the sequences residents were decided about (sent or not); the others (background
    # history, quakes far from everyone) are counted, not listed: there were ~66 of them.
    concern = store.views.decided_sequences()
    sequences, other_sequences = [], 0
    for seq_id in store.sequences.sequence_ids():
        if seq_id not in concern:
            other_sequences += 1
            continue
        s = store.sequences.get_sequence(seq_id)
        sequences.append({
            "id": seq_id, "type": s["type"], "type_zh": s["type_zh"], "final": s["final"],
            "events": s["n_events"], "delta_m": s["delta_m"], "energy_ratio": s["energy_ratio"],
            "history": [{"at": times(datetime.fromisoformat(h["changed_at"])),
                         "type": h["type"], "final": h["final"], "reasons": h["reasons"]}
                        for h in s["type_history"]]})

    population_areas = [
        _area(area, names, n) for area, n in store.views.subscribers_per_area()]
    processing = [x["latency"]["processing_ms"] for x in sent
                  if x["latency"]["processing_ms"] is not None]
    deliveries = Counter({name: len(rec.delivered) for name, rec in recorders.items()})
    return {
        "exercise": True,
        "banner": BANNER,
        "file": file,
        "speed": speed,
        "until": times(played.until) if played.until else None,
        "wall_s": round(played.wall_s, 3),
        "reports": {"played": played.fed, "after_until": played.after_until,
                    "skipped": len(skipped), "skipped_rows": skipped[:20]},
        "events": [_event(e) for e in events.values()],
        "population": {"description": population.description,
                       "description_zh": population.description_zh or population.description,
                       "residents": len(population.subscribers), "areas": population_areas,
                       "rejected_rows": list(population.rejected)},
        "sent": sent,
        "not_sent": not_sent,
        "sequences": sequences,
        "other_sequences": other_sequences,
        "totals": {
            "dispatches": len(sent),
            "notices": sum(len(g["notice_ids"]) for g in sent),
            "deliveries": {k: v for k, v in sorted(deliveries.items()) if v},
            "residents_reached": len({sid for rec in recorders.values()
                                      for _, sid in rec.delivered}),
            "not_sent_decisions": sum(g["decisions"] for g in not_sent),
            "outbox": store.outbox.counts(),
            "processing_ms_median": round(statistics.median(processing), 2) if processing else None,
            "processing_ms_max": max(processing, default=None),
        },
    }


# -- formatting -----------------------------------------------------------------------------


LANGS = ("zh", "en")
# Labels of the text and HTML reports; the kinds' names are the console's (api/dashboard.py).
LABELS: dict[str, dict[str, str]] = {
    "zh": {
        "title": "地震应急演练报告", "drill_of": "演练目录：{file}",
        "played": "回放{played}条速报（{events}次地震），{speed}，场景时钟运行至{until}，用时{wall}",
        "fast": "以最快速度回放", "speed_x": "{x}倍实时速度",
        "after_until": "{n}条速报晚于 --until，未回放", "skipped": "文件中{n}行被跳过：{rows}",
        "background": "{before}以前的{n}条速报作为背景历史载入（入库并参与序列划分，不发通知）",
        "residents": "模拟居民：{n}人（{desc}）", "rejected_row": "被拒绝的居民记录：{row}",
        "events": "地震", "sent": "将会发出的通知（{d}次发送，{n}条通知）",
        "about": "关于 {mag}（发震时刻 {when}）", "to": "发往{n}名居民：",
        "channels": "渠道（仅记录，未实际发送）：", "none": "无",
        "held": "曾等待值班人员批准；演练按其{t}时限自动发布",
        "latency": "时延：发震后{delay}（场景时间）；处理用时{ms}毫秒（{how}）",
        "rule": "规则到期→入队", "ingest": "接收→入队", "texts": "通知文本：",
        "phone": "手机通知：",
        "for_areas": "发往：{areas}",
        "bo_same": "⚠ 藏文文本与中文文本相同：藏文标签下是中文，须由藏文译者处理（{ids}）",
        "bo_han": "⚠ 藏文文本中有{n}行是中文，须由藏文译者处理",
        "msg_types": "Alert=首发,Update=更新,Cancel=撤销",
        "not_sent": "未发送（{n}项决定）", "moments": "（{n}个时刻）",
        "decisions": "{n}项决定", "history": "序列类型判定历史",
        "other_sequences": "另有{n}个序列与任何居民无关（背景历史或远离所有居民），未列出",
        "now": "目前：{type}（{n}次地震{final}）", "final": "，最终判定",
        "totals": "合计", "total_line": "发送{d}次（{n}条通知）；记录投递：{dl}；覆盖居民{r}人",
        "latency_line": "处理时延中位数{med}毫秒，最大{max}毫秒", "bj": "北京时间",
        "lang_zh": "中文", "lang_bo": "藏文", "lang_en": "英文", "colon": "：", "sep": "、",
        "kind": "类别", "area": "区县", "residents_col": "居民数", "reason": "理由",
        "when": "时间", "magnitude": "震级", "place": "地点", "type": "类型",
        "reasons": "判定依据", "status": "CAP状态", "lang_switch": "English",
    },
    "en": {
        "title": "Earthquake drill report", "drill_of": "drill of {file}",
        "played": "{played} reports played ({events} events), {speed}, clock run to {until},"
                  " {wall} wall",
        "fast": "as fast as possible", "speed_x": "{x}x real time",
        "after_until": "{n} reports after --until were not played",
        "background": "{n} reports before {before} loaded as background history (stored,"
                      " sequenced, never notified)",
        "skipped": "{n} rows of the file skipped: {rows}",
        "residents": "residents: {n} ({desc})", "rejected_row": "rejected subscriber row: {row}",
        "events": "EVENTS", "sent": "WOULD HAVE BEEN SENT ({d} dispatches, {n} notices)",
        "about": "about {mag} of {when}", "to": "to {n} residents:",
        "channels": "channels (recorded, not sent): ", "none": "none",
        "held": "held for a duty officer; the drill released it as its {t} timeout would",
        "latency": "latency: {delay} after the origin (scenario time); processing {ms} ms ({how})",
        "rule": "rule fell due -> enqueued", "ingest": "ingest -> enqueued", "texts": "texts:",
        "phone": "on the phone: ",
        "for_areas": "for {areas}",
        "bo_same": "WARNING: the bo text equals the zh text: Chinese under a Tibetan label;"
                   " needs the Tibetan translator ({ids})",
        "bo_han": "WARNING: {n} lines of the bo text are Chinese; needs the Tibetan translator",
        "msg_types": "Alert=Alert,Update=Update,Cancel=Cancel",
        "not_sent": "NOT SENT ({n} decisions)", "moments": " ({n} moments)",
        "decisions": "{n} decisions", "history": "SEQUENCE TYPE HISTORY",
        "other_sequences": "{n} other sequences concern no resident (background history, or far"
                           " from everyone): not listed",
        "now": "now {type} ({n} events{final})", "final": ", final",
        "totals": "TOTALS", "total_line": "dispatches {d} ({n} notices); deliveries recorded"
                                         " {dl}; residents reached {r}",
        "latency_line": "processing latency median {med} ms, max {max} ms", "bj": "Beijing time",
        "lang_zh": "Chinese", "lang_bo": "Tibetan", "lang_en": "English", "colon": ": ",
        "sep": ", ", "kind": "Kind", "area": "County/district", "residents_col": "Residents",
        "reason": "Reason", "when": "Time", "magnitude": "Magnitude", "place": "Place",
        "type": "Type", "reasons": "Reasons", "status": "CAP status", "lang_switch": "中文",
    },
}
TYPE_EN = {"undetermined": "undetermined", "swarm": "swarm",
           "mainshock-aftershock": "mainshock–aftershock",
           "foreshock-mainshock-aftershock": "foreshock–mainshock–aftershock",
           "isolated": "isolated", "doublet": "doublet"}


def _when(t: dict[str, str], lang: str = "en") -> str:
    utc = datetime.fromisoformat(t["utc"])
    bjt = datetime.fromisoformat(t["beijing"])
    if lang == "zh":
        return f"{bjt:%Y-%m-%d %H:%M:%S} 北京时间（{utc:%H:%M:%S} UTC）"
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC = {bjt:%Y-%m-%d %H:%M:%S} Beijing time"


def _mag(e: dict[str, Any]) -> str:
    m = e.get("magnitude")
    return "M?" if m is None else f"M{m:.1f}"


def _area_name(a: dict[str, Any], lang: str) -> str:
    return str(a["zh"] if lang == "zh" else a["en"])


def _areas(areas: list[dict[str, Any]], lang: str = "en") -> str:
    return LABELS[lang]["sep"].join(f"{_area_name(a, lang)} {a['residents']}" for a in areas)


def _reason(reason: Any, lang: str = "en") -> str:
    if isinstance(reason, dict):
        return str(reason.get(lang) or reason.get("en", ""))
    return str(reason)


def _delay(seconds: float | None, lang: str = "en") -> str:
    """How long after the origin, as people say it: "24 h", never "86401.0 s"."""
    if seconds is None:
        return "?"
    return say_duration(seconds, lang)


def _kind(kind: str, lang: str) -> str:
    from quakealert.api.dashboard import kind_name  # the console's names for message kinds

    return kind_name(kind, lang)


def _msg_type(code: str, lang: str) -> str:
    names = dict(pair.split("=") for pair in LABELS[lang]["msg_types"].split(","))
    return names.get(code, code)


def _type(code: str, type_zh: str | None, lang: str) -> str:
    if lang == "zh":
        from quakealert.core.classify import TYPE_ZH

        return type_zh or TYPE_ZH.get(code, code)
    return TYPE_EN.get(code, code)


def format_text(report: dict[str, Any], lang: str = "en") -> str:
    """The report as plain text for the terminal, in zh or en."""
    t = LABELS[lang]
    lines = [report["banner"], t["title"] + t["colon"] + t["drill_of"].format(file=report["file"])]
    rp = report["reports"]
    speed = report["speed"]
    lines.append("  " + t["played"].format(
        played=rp["played"], events=len(report["events"]),
        speed=t["fast"] if not speed else t["speed_x"].format(x=f"{speed:g}"),
        until=_when(report["until"], lang), wall=say_duration(report["wall_s"], lang)))
    if rp["after_until"]:
        lines.append("  " + t["after_until"].format(n=rp["after_until"]))
    bg = report.get("background") or {}
    if bg.get("reports"):
        lines.append("  " + t["background"].format(n=bg["reports"],
                                                   before=_when(bg["before"], lang)))
    if rp["skipped"]:
        lines.append("  " + t["skipped"].format(n=rp["skipped"],
                                                rows="; ".join(rp["skipped_rows"][:3])))
    pop = report["population"]
    desc = pop.get("description_zh") if lang == "zh" else pop["description"]
    lines.append("  " + t["residents"].format(n=pop["residents"], desc=desc or pop["description"]))
    lines.append(f"    {_areas(pop['areas'], lang)}")
    for bad in pop["rejected_rows"]:
        lines.append("    " + t["rejected_row"].format(row=bad))

    lines += ["", t["events"]]
    for e in report["events"]:
        lines.append(f"  {_when(e['origin'], lang)}  {_mag(e)}  {e.get('place') or ''}"
                     f"  [{e['id']}]")

    tot = report["totals"]
    lines += ["", t["sent"].format(d=tot["dispatches"], n=tot["notices"])]
    for i, n in enumerate(report["sent"], 1):
        lat = n["latency"]
        lines.append(f"  {i}. {_when(n['at'], lang)}  {_kind(n['kind'], lang)}"
                     f" ({_msg_type(n['msg_type'], lang)}, CAP {n['cap_status']})")
        lines.append("     " + t["about"].format(mag=_mag(n["event"]),
                                                 when=_when(n["event"]["origin"], lang)))
        lines.append("     " + t["to"].format(n=n["residents"]))
        for a in n["areas"]:
            why = a.get("reason_zh" if lang == "zh" else "reason_en") or ", ".join(a["reasons"])
            lines.append(f"       {_area_name(a, lang)}{t['colon']}{a['residents']} ({why})")
        lines.append("     " + t["channels"] + (t["sep"].join(
            f"{k} {v}" for k, v in n["channels"].items()) or t["none"]))
        if n["held_for_approval_s"]:
            lines.append("     " + t["held"].format(t=say_duration(n["held_for_approval_s"],
                                                                  lang)))
        lines.append("     " + t["latency"].format(
            delay=_delay(lat["scenario_delay_s"], lang), ms=lat["processing_ms"],
            how=t["rule"] if lat["trigger"] == "tick" else t["ingest"]))
        if n.get("bo_same_as_zh"):
            lines.append("     " + t["bo_same"].format(ids=", ".join(n["bo_same_as_zh"])))
        elif n.get("bo_chinese_lines"):
            lines.append("     " + t["bo_han"].format(n=n["bo_chinese_lines"]))
        lines.append("     " + t["texts"])
        by_area = len(n["texts"]) > len({y["lang"] for y in n["texts"]})  # wording per area
        for x in n["texts"]:
            lines.append(f"       [{x['lang']}] {x['title']}")
            for body_line in x["body"].splitlines():
                lines.append(f"            {body_line}")
            if x.get("push_title") and x.get("push_body"):
                lines.append(f"            {t['phone']}{x['push_title']} / {x['push_body']}")
            if by_area:
                lines.append("            " + t["for_areas"].format(
                    areas=t["sep"].join(_area_name(a, lang) for a in x["areas"])))

    lines += ["", t["not_sent"].format(n=tot["not_sent_decisions"])]
    for g in report["not_sent"]:
        span = ("" if g["moments"] == 1
                else f" .. {_when(g['last'], lang)}{t['moments'].format(n=g['moments'])}")
        lines.append(f"  {_when(g['first'], lang)}{span}")
        lines.append(f"     {_mag(g['event'])} {t['decisions'].format(n=g['decisions'])}"
                     f" — {_areas(g['areas'], lang)}")
        lines.append(f"     {g['reason_zh'] if lang == 'zh' else g['reason_en']}")
        if lang == "en":
            lines.append(f"     ({g['reason_code']})")

    lines += ["", t["history"]]
    for sq in report["sequences"]:
        lines.append(f"  {sq['id']}: " + t["now"].format(
            type=_type(sq["type"], sq["type_zh"], lang), n=sq["events"],
            final=t["final"] if sq["final"] else ""))
        for h in sq["history"]:
            lines.append(f"    {_when(h['at'], lang)}  {_type(h['type'], None, lang)}"
                         f"{t['final'] if h['final'] else ''}")
            for reason in h["reasons"]:
                lines.append(f"      - {_reason(reason, lang)}")
    if report.get("other_sequences"):
        lines.append("  " + t["other_sequences"].format(n=report["other_sequences"]))

    lines += ["", t["totals"],
              "  " + t["total_line"].format(
                  d=tot["dispatches"], n=tot["notices"],
                  dl=t["sep"].join(f"{k} {v}" for k, v in tot["deliveries"].items())
                  or t["none"], r=tot["residents_reached"]),
              "  " + t["latency_line"].format(med=tot["processing_ms_median"],
                                              max=tot["processing_ms_max"]),
              report["banner"]]
    return "\n".join(lines) + "\n"


def format_html(report: dict[str, Any], lang: str = "en") -> str:
    """The report as one self-contained HTML page in the console's style, in zh or en,
    EXERCISE-bannered top and bottom."""
    from quakealert.api.dashboard import render_page  # the console's templates and styles

    return render_page("drill.html.j2", lang, r=report, d=LABELS[lang],
                       when=lambda x: _when(x, lang), kind=lambda k: _kind(k, lang),
                       duration=lambda sec: _delay(sec, lang),
                       type_name=lambda code, zh=None: _type(code, zh, lang),
                       reason=lambda x: _reason(x, lang), area=lambda a: _area_name(a, lang),
                       msg_type=lambda c: _msg_type(c, lang))


# -- command line ---------------------------------------------------------------------------


def _instant(text: str) -> datetime:
    try:
        return parse_utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"speed must be a number >= 0, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="catalogue file (CSV, xlsx, FDSN text, QuakeML, GeoJSON)")
    parser.add_argument("--subscribers", type=Path, default=None,
                        help="residents as in the bulk-import CSV (default: one per county seat"
                             " of messages/places.toml plus a Chengdu control)")
    parser.add_argument("--speed", type=_speed, default=0.0,
                        help="0 = as fast as possible (default); N = N x real time, each quiet"
                             f" gap at most {MAX_GAP_S:g} s")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML config for policy, messages and approvals (its store is"
                             " never touched)")
    parser.add_argument("--columns", help="CSV and xlsx: role=header,... for columns the header "
                        "synonyms miss (time, latitude, longitude, depth, magnitude, id, ...)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--html", type=Path, default=None, help="also write the report as HTML")
    parser.add_argument("--lang", choices=LANGS, default="en",
                        help="language of the text and HTML report (default en; zh for the"
                             " office's debrief)")
    parser.add_argument("--until", type=_instant, default=None,
                        help="run the scenario clock to this time (ISO 8601, UTC unless an offset"
                             " is given; default: 24 h after the last event)")
    parser.add_argument("--start", type=_instant, default=None,
                        help="reports before this time are background history: stored and"
                             " sequenced first, never notified (e.g. 2024-10-20T00:00:00Z for"
                             " the bundled scenario; default: every report is played)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the drill store (drill.sqlite) and CAP messages in DIR")


def read_reports(path: Path, columns: str | None = None) -> tuple[list[Report], list[str]]:
    """The catalogue's reports and skipped rows; DrillInputError when nothing can be played."""
    try:
        result = read_catalog_file(path, columns=parse_columns(columns))
    except OSError as err:
        raise DrillInputError(f"cannot read {path}: {err.strerror or err}") from None
    except SourceError as err:
        raise DrillInputError(f"{path} is not a catalogue we can read: {err.detail}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DrillInputError(f"{path} is not a catalogue we can read: {err}") from None
    if not result.reports:
        why = f" ({'; '.join(result.skipped[:3])})" if result.skipped else ""
        raise DrillInputError(f"{path}: no earthquakes to replay{why}")
    return result.reports, result.skipped


async def drill(reports: list[Report], skipped: list[str], population: Population,
                settings: Settings, *, store_path: Path, file: str, speed: float,
                until: datetime | None, cap_dir: Path | None = None,
                start: datetime | None = None) -> dict[str, Any]:
    """Run one drill on a fresh store at ``store_path`` and return its report; reports before
    ``start`` are absorbed as background history first (never notified)."""
    store = open_file(store_path)  # a throw-away file, never the settings' store
    try:
        history = [r for r in reports if start is not None and r.origin_at < start]
        reports = [r for r in reports if start is None or r.origin_at >= start]
        if not reports:
            raise DrillInputError(f"{file}: no earthquakes after --start to replay")
        first = min(r.origin_at for r in reports)
        store.subscribers.add_subscribers(population.subscribers, now=first - timedelta(days=1),
                        places=population.places)
        pipeline = TimedPipeline(store, settings)
        if history and start is not None:
            pipeline.absorb(store.ingest(history, now=start, queue_work=False), at=start)
        recorders = {name: RecorderChannel(name) for name in CHANNELS}
        box_settings = OutboxSettings.from_section(settings.section("outbox"))
        # The recorders never use the session; None proves no HTTP can happen.
        outbox = Outbox(store, recorders, None, settings=box_settings)  # type: ignore[arg-type]
        end = until or max(r.origin_at for r in reports) + DEFAULT_AFTER
        played = await play(pipeline, reports, until=end, speed=speed,
                            deliver=lambda: drain(outbox, datetime.now(UTC)))
        held_s, held = release_held(pipeline)
        # held notices as their timeout would release them, and notices policy deferred out of
        # quiet hours (22:00-07:30 at most, core.policy.quiet_release_at) as the morning would
        await drain(outbox, datetime.now(UTC) + timedelta(seconds=held_s + 1) + QUIET_DEFER_MAX)
        sender = str(settings.section("cap").get("sender", CAP_SENDER))
        report = build_report(store, pipeline, recorders, population, file=file,
                              skipped=skipped, played=played, speed=speed, held_s=held_s,
                              held=held, cap_dir=cap_dir, sender=sender)
        report["background"] = {"reports": len(history),
                                "before": times(start) if start is not None else None}
        return report
    finally:
        store.close()


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        # one INFO line per notice would bury the report; warnings still show
        logging.getLogger("quakealert").setLevel(logging.WARNING)
    try:
        settings = load_settings(args.config)
        reports, skipped = read_reports(args.file, getattr(args, "columns", None))
        if args.subscribers is not None:
            allow = bool(settings.section("webpush").get("allow_insecure_endpoints", False))
            population = csv_population(args.subscribers, allow_insecure=allow)
        else:
            population = default_population()
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            if (args.keep / "drill.sqlite").exists():
                raise DrillInputError(f"{args.keep}/drill.sqlite exists; keep each drill in its "
                                      "own directory")
    except QuakealertError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="quakealert-drill-"))
    try:
        report = asyncio.run(drill(
            reports, skipped, population, settings, store_path=workdir / "drill.sqlite",
            file=str(args.file), speed=args.speed, until=args.until,
            cap_dir=workdir / "cap" if args.keep else None, start=args.start))
    except DrillInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.html is not None:
        try:
            args.html.write_text(format_html(report, args.lang), encoding="utf-8")
        except OSError as err:
            print(f"error: cannot write {args.html}: {err.strerror or err}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(format_text(report, args.lang))
    return 0
