"""Residents: predicted shaking at every subscriber, the policy per resident or per
group of residents whose decision is necessarily the same, and every decision
recorded with its reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from quakealert.core.classify import Classification
from quakealert.core.geo import distances_km
from quakealert.core.intensity import roman, upper_intensity_many
from quakealert.core.policy import (
    Decision,
    EventView,
    Plan,
    PolicyInput,
    SubscriberView,
    ThreadState,
    Told,
    felt_words,
    plan,
)
from quakealert.core.sequences import QuakeSequence
from quakealert.model import Event, event_type_zh
from quakealert.store import decisions as dec
from quakealert.store.base import Store

log = logging.getLogger(__name__)

LANGS = ("zh", "bo", "en")


@dataclass(slots=True)
class Recipients:
    """Every subscriber as arrays (cached): where they are (1 km), thresholds, area, channel."""

    ids: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    min_intensity: np.ndarray
    area: list[str | None]
    langs: list[tuple[str, ...]]
    key: tuple[int, int]
    area_code: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    lang_code: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @classmethod
    def load(cls, store: Store) -> Recipients:
        rows = store.subscribers.recipient_rows()
        key = store.subscribers.recipients_key()
        area = [r[4] for r in rows]
        langs = [_langs(r[5]) for r in rows]
        areas: dict[str | None, int] = {}
        codes: dict[tuple[str, ...], int] = {}
        return cls(
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            lat=np.array([r[1] for r in rows], dtype=np.float64),
            lon=np.array([r[2] for r in rows], dtype=np.float64),
            min_intensity=np.array([r[3] for r in rows], dtype=np.int16),
            area=area, langs=langs, key=key,
            area_code=np.array([areas.setdefault(a, len(areas)) for a in area], dtype=np.int64),
            lang_code=np.array([codes.setdefault(x, len(codes)) for x in langs], dtype=np.int64),
        )


def _langs(raw: str) -> tuple[str, ...]:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        value = [x for x in str(raw).replace(";", ",").split(",") if x]
    return tuple(x for x in value if x in LANGS) or ("zh", "bo")


def degrees_of(upper: np.ndarray) -> np.ndarray:
    """CSIS degree per subscriber, as core.intensity.csis_degree (n covers [n-0.5, n+0.5))."""
    return np.clip(np.floor(upper + 0.5), 1, 12).astype(np.int16)


def thread_to_json(t: ThreadState) -> str:
    def enc(v: Any) -> Any:
        return v.isoformat() if isinstance(v, datetime) else v

    d = asdict(t)
    d["told"] = [{k: enc(v) for k, v in told.items()} for told in d["told"]]
    return json.dumps({k: enc(v) for k, v in d.items()})


def thread_from_json(raw: str) -> ThreadState:
    d = json.loads(raw)

    def at(v: str | None) -> datetime | None:
        return None if v is None else datetime.fromisoformat(v)

    told = tuple(
        Told(t["event_id"], datetime.fromisoformat(t["origin_at"]), t["latitude"],
             t["longitude"], t["depth_km"], t["magnitude"], t["status"], tuple(t["notice_ids"]))
        for t in d["told"]
    )
    return ThreadState(
        subscriber_id=d["subscriber_id"], sequence_id=d["sequence_id"], told=told,
        advised_type=d["advised_type"], notice_ids=tuple(d["notice_ids"]),
        last_sent_at=at(d["last_sent_at"]), last_summary_at=at(d["last_summary_at"]),
        member_count_told=d["member_count_told"], last_felt_at=at(d.get("last_felt_at")),
        last_update_at=at(d.get("last_update_at")),
        folded_count=d.get("folded_count", 0), folded_magnitude=d.get("folded_magnitude"),
        folded_at=at(d.get("folded_at")),
    )


def policy_type(t: str) -> str:
    """Sequence type as the message glossary and policy name it (underscores)."""
    return t.replace("-", "_")


@dataclass(slots=True)
class _Planned:
    notice_id: str
    decision: Decision
    event: Event
    area: str | None
    degree: int
    subscriber_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class RoundResult:
    """What one evaluation produced: notices and how many decisions of each kind."""

    notice_ids: list[str] = field(default_factory=list)
    sent: int = 0
    not_sent: int = 0


class ResidentDecisions:
    """Who is told what, and why not: one policy round per sequence evaluation. Part of :class:`Pipeline`, whose
    ``__init__`` holds the state these methods share."""

    def recipients(self) -> Recipients:
        key = self.store.subscribers.recipients_key()
        if self._recipients is None or self._recipients.key != key:
            self._recipients = Recipients.load(self.store)
        return self._recipients

    def _has_threads(self, seq_id: str) -> bool:
        return self.store.decisions.has_threads(seq_id)

    def _policy_round(self, seq: QuakeSequence, cls: Classification, at: datetime,
                      trigger: str, event: Event | None) -> RoundResult:
        out = RoundResult()
        members = [e for e in seq.events if e.origin_at <= at and e.magnitude is not None]
        if not members:
            return out
        largest = cls.largest or max(members, key=lambda e: (e.magnitude or -9, e.id))
        subject = event or members[-1]
        if subject.magnitude is None:
            return out
        rec = self.recipients()
        if not len(rec.ids):
            return out
        threads = self.store.decisions.threads_for(seq.id)
        up_event = upper_intensity_many(subject.magnitude, subject.depth_km or 10.0,
                                        subject.latitude, subject.longitude, rec.lat, rec.lon,
                                        sigma_factor=self.policy.sigma_factor)
        deg_event = degrees_of(up_event)
        threshold = np.where(rec.min_intensity > 0, rec.min_intensity, self.policy.felt_degree)
        has_thread = np.isin(rec.ids, np.fromiter(threads, dtype=np.int64, count=len(threads)))
        if trigger == "tick":
            idx = np.flatnonzero(has_thread)
            policy_trigger = "daily"
        else:
            idx = np.flatnonzero((deg_event >= threshold) | has_thread)
            policy_trigger = trigger
            # Residents far from the shaking, with no thread: one aggregated "not sent" per area.
            rest = np.ones(len(rec.ids), dtype=bool)
            rest[idx] = False
            self._aggregate_not_sent(seq.id, subject, at, rec, rest, deg_event)
            out.not_sent += int(rest.sum())
        if not len(idx):
            return out
        dist = distances_km(subject.latitude, subject.longitude, rec.lat[idx], rec.lon[idx])
        up_largest = upper_intensity_many(largest.magnitude or subject.magnitude,
                                          largest.depth_km or 10.0, largest.latitude,
                                          largest.longitude, rec.lat[idx], rec.lon[idx],
                                          sigma_factor=self.policy.sigma_factor)
        dist_largest = distances_km(largest.latitude, largest.longitude, rec.lat[idx],
                                    rec.lon[idx])
        planned: dict[str, _Planned] = {}
        rows: list[dec.DecisionRow] = []
        ptype = policy_type(cls.type)
        states = self.store.decisions.thread_states(seq.id) if threads else {}
        parsed: dict[str, ThreadState] = {}
        chosen = idx
        for positions in self._groups(rec, chosen, threads, deg_event, dist):
            j = int(positions[0])  # the group's first resident stands for all of it
            i = int(idx[j])
            sid = int(rec.ids[i])
            raw = threads.get(sid)
            thread = None
            if raw is not None:
                if raw not in parsed:
                    state = states[int(raw[1:])] if raw.startswith("@") else raw
                    parsed[raw] = thread_from_json(state)
                thread = replace(parsed[raw], subscriber_id=str(sid))
            ctx = PolicyInput(
                sequence_id=seq.id, trigger=policy_trigger,  # type: ignore[arg-type]
                event=self._view(subject, float(up_event[i]), float(dist[j])),
                largest=self._view(largest, float(up_largest[j]), float(dist_largest[j])),
                sequence_type=ptype, type_provisional=not cls.final, type_official=False,
                member_count=len(members), last_event_at=members[-1].origin_at,
            )
            sub = SubscriberView(str(sid), min_intensity=int(rec.min_intensity[i]) or None)
            area = rec.area[i]

            def notice_id(d: Decision, _area: str | None = area) -> str:
                key = json.dumps([seq.id, d.event_id, d.kinds, d.msg_type, d.urgency,
                                  list(d.references), d.degree, _area, at.isoformat()]
                                 + ([d.folded.count, d.folded.magnitude, d.folded.at.isoformat()]
                                    if d.folded else []))
                return "qa-n-" + hashlib.blake2s(key.encode(), digest_size=8).hexdigest()

            p = plan(ctx, thread, sub, self.policy, now=at, notice_id=notice_id)
            # A timer that found nothing due (summary too soon, not a swarm) is not a decision
            # about a quake; recording it for every resident every tick would bury the ones
            # duty staff need. Event-triggered "not sent" decisions are all kept.
            group = rec.ids[chosen[positions]]
            if len(group) == 1 and (raw is None or not raw.startswith("@")):
                sent = self._record(p, thread, sid, area, seq.id, subject, at, rows, planned,
                                    keep_not_sent=trigger != "tick")
            else:
                sent = self._record_group(p, thread, group, area, seq.id, subject, at, rows,
                                          planned, keep_not_sent=trigger != "tick")
            out.sent += sent
            out.not_sent += len(p.decisions) * len(group) - sent
        for pl in planned.values():
            self._make_notice(pl, seq, cls, at)
            out.notice_ids.append(pl.notice_id)
        self.store.decisions.save_decisions(rows)
        self._count(rows)
        return out

    def _record(self, p: Plan, thread: ThreadState | None, sid: int, area: str | None,
                seq_id: str, subject: Event, at: datetime, rows: list[dec.DecisionRow],
                planned: dict[str, _Planned], *, keep_not_sent: bool = True) -> int:
        """One resident's plan: its decision rows, its share of the notices, its thread."""
        sent = 0
        for d, nid in zip(p.decisions, p.notice_ids + ("",) * len(p.decisions)):
            if d.send or keep_not_sent:
                rows.append(dec.DecisionRow(
                    at=at, sequence_id=seq_id, event_id=d.event_id or subject.id,
                    send=d.send, reason_code=d.reason_code, reason_en=d.reason_en,
                    reason_zh=d.reason_zh, subscriber_id=sid, area=area,
                    kind="+".join(d.kinds) or None, msg_type=d.msg_type,
                    urgency=d.urgency if d.send else None, notice_id=nid or None,
                    degree=d.degree))
            if d.send:
                planned.setdefault(nid, _Planned(nid, d, subject, area, d.degree))
                planned[nid].subscriber_ids.append(sid)
                sent += 1
        if p.thread is not None and p.thread != thread:
            self.store.decisions.save_thread(sid, seq_id, thread_to_json(p.thread), at)
        return sent

    def _groups(self, rec: Recipients, chosen: np.ndarray, threads: dict[int, str],
                deg_event: np.ndarray, dist: np.ndarray) -> list[np.ndarray]:
        """Residents whose decision is necessarily the same, as positions into ``chosen``: same
        area, degree, threshold, languages, side of the strong-shaking distance, and the same
        thread (none, or one shared state); a resident with a thread of their own is alone."""
        tkey = np.zeros(len(chosen), dtype=np.int64)
        if threads:
            t_ids = np.fromiter(threads, dtype=np.int64, count=len(threads))
            t_key = np.fromiter((int(v[1:]) if v.startswith("@") else -1
                                 for v in threads.values()), dtype=np.int64, count=len(threads))
            order = np.argsort(t_ids)
            t_ids, t_key = t_ids[order], t_key[order]
            sids = rec.ids[chosen]
            pos = np.clip(np.searchsorted(t_ids, sids), 0, len(t_ids) - 1)
            found = t_ids[pos] == sids
            tkey[found] = t_key[pos[found]]
            alone = tkey < 0
            tkey[alone] = -1 - np.flatnonzero(alone)
        if threads:
            _, tkey = np.unique(tkey, return_inverse=True)
        key = np.zeros(len(chosen), dtype=np.int64)
        # Small non-negative codes packed into one integer (a column's span times the key so
        # far), re-numbered densely if it would grow past 2**62.
        for col in (rec.area_code[chosen], deg_event[chosen].astype(np.int64),
                    rec.min_intensity[chosen].astype(np.int64), rec.lang_code[chosen],
                    (dist <= self.policy.strong_distance_km).astype(np.int64),
                    tkey.reshape(-1)):
            span = int(col.max()) + 1 if len(col) else 1
            if (int(key.max()) + 1 if len(key) else 1) * span >= 2**62:
                _, key = np.unique(key, return_inverse=True)
                key = key.reshape(-1)
            key = key * span + col
        order = np.argsort(key, kind="stable")
        cuts = np.flatnonzero(np.diff(key[order])) + 1
        return sorted(np.split(order, cuts), key=lambda g: int(g[0]))

    def _record_group(self, p: Plan, thread: ThreadState | None, group: np.ndarray,
                      area: str | None, seq_id: str, subject: Event, at: datetime,
                      rows: list[dec.DecisionRow], planned: dict[str, _Planned], *,
                      keep_not_sent: bool = True) -> int:
        """A group's plan: one decision row per decision with the group's count and members,
        the group's share of the notices, and one shared thread state."""
        n = len(group)
        members = group.astype("<i8").tobytes()
        ids = group.tolist()
        sent = 0
        for d, nid in zip(p.decisions, p.notice_ids + ("",) * len(p.decisions)):
            if d.send or keep_not_sent:
                rows.append(dec.DecisionRow(
                    at=at, sequence_id=seq_id, event_id=d.event_id or subject.id,
                    send=d.send, reason_code=d.reason_code, reason_en=d.reason_en,
                    reason_zh=d.reason_zh, area=area, kind="+".join(d.kinds) or None,
                    msg_type=d.msg_type, urgency=d.urgency if d.send else None,
                    notice_id=nid or None, degree=d.degree, count=n, members=members))
            if d.send:
                planned.setdefault(nid, _Planned(nid, d, subject, area, d.degree))
                planned[nid].subscriber_ids.extend(ids)
                sent += n
        if p.thread is not None and p.thread != thread:
            self.store.decisions.save_group_thread(ids, seq_id, thread_to_json(p.thread), at)
        return sent

    def _count(self, rows: Sequence[dec.DecisionRow]) -> None:
        if self.metrics is None:
            return
        for r in rows:
            self.metrics.notices.labels(r.kind or "none", "sent" if r.send else r.reason_code).inc(
                r.count)

    def _not_an_earthquake(self, event: Event, at: datetime, seq_id: str = "") -> None:
        """Residents get no notice for an explosion, quarry blast or collapse; duty staff see
        why (issue 11). Filed under the sequence a retyped quake leaves, else under the event
        alone (no sequence id)."""
        kind = event.event_type or "?"
        row = dec.DecisionRow(
            at=at, sequence_id=seq_id, event_id=event.id, send=False, reason_code="not_earthquake",
            reason_en=f"Not sent: {kind} (event type from {event.preferred_source}), not an "
                      "earthquake.",
            reason_zh=f"未发送：{event_type_zh(event.event_type)}（事件类型来自"
                      f"{event.preferred_source}），不是天然地震。")
        self.store.decisions.save_decisions([row])
        self._count([row])
        log.info("not sent: not an earthquake", extra={"event_id": event.id, "type": kind})

    def _aggregate_not_sent(self, seq_id: str, event: Event, at: datetime, rec: Recipients,
                            mask: np.ndarray, degrees: np.ndarray) -> None:
        if not mask.any():
            return
        where = np.flatnonzero(mask)
        keys = np.column_stack([rec.area_code[where], degrees[where].astype(np.int64)])
        _, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        groups = np.split(where[order], np.flatnonzero(np.diff(inverse[order])) + 1)
        found = [(rec.area[int(g[0])], int(degrees[int(g[0])]), g) for g in groups]
        rows = []
        for area, degree, g in sorted(found, key=lambda x: (str(x[0]), x[1])):
            n = len(g)
            rows.append(dec.DecisionRow(
                at=at, sequence_id=seq_id, event_id=event.id, send=False,
                reason_code="below_threshold",
                reason_en=(f"Predicted {felt_words(degree)[0]} here ({roman(degree)}): "
                           f"M{event.magnitude:.1f}, predicted intensity degree {degree} (A12 "
                           f"mean+{self.policy.sigma_factor:g}σ) is below each resident's "
                           "threshold."),
                reason_zh=(f"本地预计{felt_words(degree)[1]}（{roman(degree, 'zh')}度）："
                           f"{event.magnitude:.1f}级地震，预计烈度{degree}度（A12均值+"
                           f"{self.policy.sigma_factor:g}σ），低于用户的通知阈值。"),
                area=area, degree=degree, count=n,
                members=rec.ids[g].astype("<i8").tobytes()))
        self.store.decisions.save_decisions(rows)
        self._count(rows)

    @staticmethod
    def _view(e: Event, upper: float, distance: float) -> EventView:
        status = e.status if e.status in ("automatic", "reviewed", "deleted") else "reviewed"
        return EventView(e.id, e.origin_at, e.latitude, e.longitude, e.depth_km,
                         float(e.magnitude or 0.0), status, upper, distance)  # type: ignore[arg-type]

    def _cancel_deleted(self, seq_id: str, event: Event, at: datetime, *,
                        retyped: bool = False) -> list[str]:
        """An agency deleted an event, or ``retyped`` it as a non-earthquake (an explosion...):
        residents who were told about it get a Cancel."""
        threads = self.store.decisions.threads_for(seq_id)
        states = self.store.decisions.thread_states(seq_id)
        told = {sid: replace(thread_from_json(
                    states[int(raw[1:])] if raw.startswith("@") else raw), subscriber_id=str(sid))
                for sid, raw in threads.items()}
        told = {sid: t for sid, t in told.items() if t.told_event(event.id) is not None}
        if not told:
            return []
        rec = self.recipients()
        area = dict(zip(rec.ids.tolist(), rec.area))
        planned: dict[str, _Planned] = {}
        rows: list[dec.DecisionRow] = []
        with self.store.transaction():
            for sid, thread in sorted(told.items()):
                view = self._view(event, 0.0, 0.0)
                ctx = PolicyInput(sequence_id=seq_id, trigger="retyped" if retyped else "deleted",
                                  event=view, largest=view, sequence_type="undetermined",
                                  event_type=event.event_type, source=event.preferred_source)
                p = plan(ctx, thread, SubscriberView(str(sid)), self.policy, now=at,
                         notice_id=lambda d: "qa-n-" + hashlib.blake2s(
                             f"{seq_id}|{d.event_id}|cancel|{at.isoformat()}".encode(),
                             digest_size=8).hexdigest())
                self._record(p, thread, sid, area.get(sid), seq_id, event, at, rows, planned)
            for pl in planned.values():
                self._make_cancel(pl, seq_id, at, retyped=retyped)
            self.store.decisions.save_decisions(rows)
            self._count(rows)
            self._enqueue(list(planned), at)
        return list(planned)
