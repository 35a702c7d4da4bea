"""The public CAP feed: ``/cap/alerts.atom`` (released notices, newest first) and
``/cap/{id}.xml`` (one notice's CAP 1.2 message).

A notice's CAP is served as stored at release (``store.notices.save_cap``) when the pipeline kept
it; otherwise it is built here from the notice, its event and the stored area circle.
Config ``[cap]``: ``sender`` (CAP <sender>), ``base_url`` (links; default: the request's own
origin), ``feed_limit``, ``radius_km`` (circle radius when a notice has none stored).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from quakealert.api.keys import SETTINGS, STORE
from quakealert.config import Settings
from quakealert.core.cap import CapReference, build_atom_feed, build_cap
from quakealert.core.render import NoticeContext, agency_place, epicentre_place_key, exercise_title
from quakealert.errors import NotFound
from quakealert.store.base import Store
from quakealert.store.notices import StoredNotice

log = logging.getLogger(__name__)

CAP_TYPE = "application/cap+xml"
ATOM_TYPE = "application/atom+xml"
DEFAULT_SENDER = "quakealert@localhost"
DEFAULT_FEED_LIMIT = 50
DEFAULT_RADIUS_KM = 100.0
PUBLISHED = ("released", "expired")  # pending and rejected notices are never public

routes = web.RouteTableDef()


def public_base_url(settings: Settings) -> str:
    """The address public documents (Atom feed, CAP links, WADL) name: ``[cap] base_url``, else
    the API's own bind address. Never the request's Host header: the feed is publicly cached,
    and a forged Host would otherwise be served to everyone (issue 9)."""
    configured = settings.section("cap").get("base_url")
    if configured:
        return str(configured).rstrip("/")
    host = settings.api_host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.api_port}"


def _base_url(request: web.Request) -> str:
    return public_base_url(request.app[SETTINGS])


def _sender(request: web.Request) -> str:
    return str(request.app[SETTINGS].section("cap").get("sender", DEFAULT_SENDER))


def _title(stored: StoredNotice) -> str:
    """The entry title: the English headline when there is one (feed readers), else the first."""
    notice = stored.notice
    msg = notice.message("en") or (notice.messages[0] if notice.messages else None)
    title = msg.title if msg else notice.kind
    if notice.exercise and msg is not None:  # the marker once, in the title's language
        return exercise_title(title, msg.lang)
    return title


@routes.get("/cap/alerts.atom")
async def alerts_feed(request: web.Request) -> web.Response:
    """Atom feed of released notices, newest first, each linking to its CAP message."""
    section = request.app[SETTINGS].section("cap")
    limit = int(section.get("feed_limit", DEFAULT_FEED_LIMIT))
    notices = request.app[STORE].notices.list_notices(state="released", limit=limit)
    base = _base_url(request)
    entries = [
        (s.notice.id, _title(s), s.released_at or s.state_at, f"{base}/cap/{s.notice.id}.xml")
        for s in notices
    ]
    updated = max((e[2] for e in entries), default=datetime(2024, 1, 1, tzinfo=UTC))
    body = build_atom_feed(entries, feed_id=f"{base}/cap/alerts.atom",
                           title="quakealert earthquake notices (CAP 1.2)", updated_at=updated,
                           self_url=f"{base}/cap/alerts.atom")
    return web.Response(body=body, content_type=ATOM_TYPE, charset="utf-8",
                        headers={"Cache-Control": "public, max-age=30"})


@routes.get("/cap/{id}.xml")
async def cap_message(request: web.Request) -> web.Response:
    """One released notice as CAP 1.2 XML; 404 for unknown or unreleased notices."""
    notice_id = request.match_info["id"]
    store = request.app[STORE]
    stored = store.notices.load_stored_notice(notice_id)
    if stored.state not in PUBLISHED:
        raise NotFound(f"no notice {notice_id!r}")
    body = store.notices.load_cap(notice_id)
    if body is None:
        body = build_cap_for(request, stored)
    return web.Response(body=body, content_type=CAP_TYPE, charset="utf-8",
                        headers={"Cache-Control": "public, max-age=300"})


def build_cap_for(request: web.Request, stored: StoredNotice) -> bytes:
    """Build the CAP of a stored notice from its event (when none was kept at release)."""
    radius = float(request.app[SETTINGS].section("cap").get("radius_km", DEFAULT_RADIUS_KM))
    return cap_for_notice(request.app[STORE], stored, sender=_sender(request),
                          radius_km=radius)


def cap_for_notice(store: Store, stored: StoredNotice, *, sender: str,
                   radius_km: float = DEFAULT_RADIUS_KM) -> bytes:
    """The CAP 1.2 message of a stored notice, rebuilt from its event; NotFound says why not."""
    notice = stored.notice
    try:
        event = store.event(notice.event_id)
    except NotFound:
        raise NotFound(f"no CAP for notice {notice.id!r}: its event is unknown") from None
    if event.magnitude is None:
        raise NotFound(f"no CAP for notice {notice.id!r}: its event has no magnitude")
    ctx = NoticeContext(
        event_id=event.id, origin_at=event.origin_at, latitude=event.latitude,
        longitude=event.longitude, depth_km=event.depth_km, magnitude=event.magnitude,
        mag_type=event.mag_type, status="automatic" if event.status == "automatic" else "reviewed",
        source=event.preferred_source,
        place_key=epicentre_place_key(event.latitude, event.longitude),
        place_text=agency_place(event.place),
        sequence_id=notice.sequence_id, exercise=notice.exercise, url=notice.url,
    )
    if stored.area is not None:
        circle = stored.area.as_tuple()
    else:
        circle = (event.latitude, event.longitude, radius_km)
    refs = []
    for ref_id in notice.references:
        try:
            ref = store.notices.load_stored_notice(ref_id)
        except NotFound:
            continue
        refs.append(CapReference(sender=sender, identifier=ref_id,
                                 sent_at=ref.released_at or ref.notice.created_at))
    try:
        return build_cap(notice, ctx, sender=sender, status="Actual", area_circle=circle,
                         sent_at=stored.released_at or notice.created_at, references=refs)
    except ValueError as err:  # an Update whose earlier notices are not in the store
        log.warning("cannot build CAP", extra={"notice_id": notice.id, "error": str(err)})
        raise NotFound(f"no CAP for notice {notice.id!r}: {err}") from None
