"""What a drill found, as JSON-ready values: every notice grouped per dispatch with its areas,
reasons and latency, what was not sent and why, and the sequence types over time.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lxml import etree

from quakealert.api.cap import cap_for_notice
from quakealert.cli.drill.scenario import NO_AREA_NAMES, Population
from quakealert.core.cap import CAP_NS
from quakealert.errors import NotFound
from quakealert.formats.cenc import BEIJING_OFFSET_H
from quakealert.model import Event, Message
from quakealert.store.base import Store
from quakealert.store.notices import StoredNotice

if TYPE_CHECKING:
    from quakealert.cli.drill.replay import Played, RecorderChannel, TimedPipeline

BEIJING = timezone(timedelta(hours=BEIJING_OFFSET_H))
CAP_SENDER = "quakealert-drill@localhost"  # unless [cap] sender is configured
BANNER = "*** EXERCISE — 演练 — a drill, not a real earthquake; nothing was sent ***"


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
