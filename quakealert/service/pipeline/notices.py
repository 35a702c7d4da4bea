"""Notices: rendered in every language with their context line, stored (held for a
duty officer or released) and enqueued for delivery after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from quakealert.core.classify import Classification
from quakealert.core.context import regional_context
from quakealert.core.render import (
    NotableEvent,
    NoticeContext,
    PreviousNotice,
    RecentActivity,
    RegionalContext,
    agency_place,
    epicentre_place_key,
    render_notice,
)
from quakealert.core.sequences import QuakeSequence
from quakealert.errors import InvalidRequest, NotFound
from quakealert.model import Event, Notice
from quakealert.service.pipeline.residents import LANGS, _Planned, policy_type
from quakealert.store import notices as nt

log = logging.getLogger(__name__)

class NoticeMaking:
    """Rendering, storing and enqueueing the notices a round plans. Part of :class:`Pipeline`, whose
    ``__init__`` holds the state these methods share."""

    def _context_for(self, e: Event, cls: Classification) -> RegionalContext | None:
        """The context line of the notice's own quake (not of the sequence's largest)."""
        if cls.context is None:
            return None
        got = e.magnitude_from(cls.context.agency)
        if got is None or got[0] < cls.context.min_magnitude:
            return None
        start = e.origin_at - timedelta(days=365.25 * cls.context.years)
        c = regional_context(e, got[0], self.engine.nearby(
            e.latitude, e.longitude, cls.context.radius_km, start, e.origin_at),
            cls.context.agency, radius_km=cls.context.radius_km, years=cls.context.years,
            min_magnitude=cls.context.min_magnitude)
        before = c.largest_before
        return RegionalContext(
            radius_km=c.radius_km, years=int(c.years), min_magnitude=c.min_magnitude,
            count=c.count, largest_magnitude=c.largest.magnitude, is_largest=c.is_largest,
            largest_at=c.largest.origin_at,
            largest_before_magnitude=None if before is None else before.magnitude,
            largest_before_at=None if before is None else before.origin_at)

    def _make_notice(self, pl: _Planned, seq: QuakeSequence, cls: Classification,
                     at: datetime) -> None:
        d, e = pl.decision, pl.event
        members = [m for m in seq.events if m.origin_at <= at]
        previous = self._previous(d.references)
        context = self._context_for(e, cls)
        m1 = cls.largest_magnitude or max((m.magnitude or 0) for m in members)
        notable = tuple(NotableEvent(m.origin_at, float(m.magnitude)) for m in members
                        if m.magnitude is not None and m.magnitude >= m1 - 1.0)[-6:]
        day = [m for m in members if m.origin_at > at - timedelta(hours=24)]
        ctx = NoticeContext(
            event_id=e.id, origin_at=e.origin_at, latitude=e.latitude, longitude=e.longitude,
            depth_km=e.depth_km, magnitude=float(e.magnitude or 0), mag_type=e.mag_type,
            status="automatic" if e.status == "automatic" else "reviewed",
            source=e.preferred_source,
            place_key=epicentre_place_key(e.latitude, e.longitude, self.catalog,
                                          agency_place(e.place)),
            place_text=agency_place(e.place), same_swarm=d.reason_code == "felt_in_swarm",
            recipient_place_key=pl.area, recipient_degree=pl.degree, sequence_id=seq.id,
            sequence_type=None if cls.type == "undetermined" else policy_type(cls.type),
            type_official=False, sequence_started_at=seq.first_at,
            sequence_count=len(members), notable=notable,
            recent=RecentActivity(24.0, len(day), max((m.magnitude or 0) for m in day))
            if day else None,
            summary=d.reason_code == "daily_summary", context=context, previous=previous,
            folded_count=d.folded.count if d.folded else 0,
            folded_largest=NotableEvent(d.folded.at, d.folded.magnitude) if d.folded else None,
            exercise=self.exercise, url=f"{self.base_url}/n/{pl.notice_id}",
        )
        self._store_notice(pl, ctx, seq.id, at)

    def _store_notice(self, pl: _Planned, ctx: NoticeContext, seq_id: str, at: datetime
                      ) -> None:
        """Render the planned notice in every language, store it (held if its kind needs
        approval) and keep its recipients for the outbox."""
        d, e = pl.decision, pl.event
        messages = render_notice(d.kinds, ctx, LANGS, now=at, options=self.render_options,
                                 catalog=self.catalog)
        notice = Notice(
            id=pl.notice_id, sequence_id=seq_id, event_id=e.id, kind="+".join(d.kinds),
            msg_type=d.msg_type or "Alert", messages=messages, created_at=at,
            urgency=d.urgency, references=d.references, exercise=self.exercise, url=ctx.url)
        rule = self.approvals.get(d.kind or "")
        state = "pending_approval" if rule else "released"
        reason = (f"waits for a duty officer, at most {rule.timeout_s:.0f} s" if rule
                  else f"{d.reason_code}: {d.reason_en}")
        try:
            self.store.notices.save_notice(
                notice, state,  # type: ignore[arg-type]
                area=nt.AreaCircle(e.latitude, e.longitude, self._area_km(pl.degree),
                                   e.place or ""),
                at=datetime.now(UTC), reason=reason)
        except InvalidRequest as err:  # the same notice id already stored: a replayed decision
            log.warning("notice not stored again: %s", err, extra={"notice_id": pl.notice_id})
            return
        self._pending_recipients[pl.notice_id] = (pl.subscriber_ids, rule)
        if d.deliver_at is not None and d.deliver_at > at:
            self._deferred[pl.notice_id] = d.deliver_at - at
        log.info("notice stored", extra={
            "notice_id": pl.notice_id, "sequence_id": seq_id, "kind": notice.kind,
            "recipients": len(pl.subscriber_ids), "state": state, "reason": d.reason_code})

    def _area_km(self, degree: int) -> float:
        return 200.0 if degree >= 3 else 100.0

    def _previous(self, refs: Sequence[str]) -> PreviousNotice | None:
        if not refs:
            return None
        try:
            stored = self.store.notices.load_stored_notice(refs[-1])
        except NotFound:
            return None
        n = stored.notice
        try:
            e = self.store.event(n.event_id)
        except NotFound:
            return None
        told = [h for h in self.store.event_history(e.id)]
        first = told[0] if told else None
        return PreviousNotice(
            notice_id=n.id, sent_at=stored.released_at or n.created_at,
            titles=tuple((m.lang, m.title) for m in n.messages),
            origin_at=e.origin_at if first is None else datetime.fromisoformat(
                first["time"]),
            latitude=first["latitude"] if first else e.latitude,
            longitude=first["longitude"] if first else e.longitude,
            depth_km=first["depth_km"] if first else e.depth_km,
            magnitude=float(first["magnitude"] if first else (e.magnitude or 0)),
            place_text=e.place)

    def _make_cancel(self, pl: _Planned, seq_id: str, at: datetime, *,
                     retyped: bool = False) -> None:
        e = pl.event
        previous = self._previous(pl.decision.references)
        ctx = NoticeContext(
            event_id=e.id, origin_at=e.origin_at, latitude=e.latitude, longitude=e.longitude,
            depth_km=e.depth_km, magnitude=float(e.magnitude or 0), mag_type=e.mag_type,
            source=e.preferred_source, place_text=agency_place(e.place), sequence_id=seq_id,
            previous=previous, cancel_reason="not_earthquake" if retyped else "deleted",
            event_type=e.event_type, exercise=self.exercise,
            url=f"{self.base_url}/n/{pl.notice_id}")
        self._store_notice(pl, ctx, seq_id, at)

    def _enqueue(self, notice_ids: Iterable[str], at: datetime) -> None:
        wall = datetime.now(UTC)
        for nid in notice_ids:
            pending = self._pending_recipients.pop(nid, None)
            if pending is None:
                continue
            ids, rule = pending
            due = wall + timedelta(seconds=rule.timeout_s) if rule else wall
            due += self._wall_delay(self._deferred.pop(nid, timedelta(0)))  # quiet hours
            self.store.outbox.enqueue_subscribers(nid, ids, now=due)

    def _wall_delay(self, scenario: timedelta) -> timedelta:
        """A wait in scenario time as wall time: a replay at speed N runs N times faster, and a
        replay at speed 0 (as fast as possible) does not wait; live, the two are the same."""
        sources = self.runtime.sources.values() if self.runtime is not None else ()
        speeds = [float(src.config.speed) for src in sources
                  if callable(getattr(src, "virtual_now", None))]
        if not speeds or not scenario:
            return scenario
        return timedelta(0) if 0.0 in speeds else scenario / max(speeds)
