"""Merged events: `GET /api/v1/events`, `/api/v1/events/{id}`, `/api/v1/events/{id}/history`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from quakealert.api.keys import STORE
from quakealert.api.params import (
    decode_cursor,
    encode_cursor,
    get_bool,
    get_choice,
    get_float,
    get_int,
    get_time,
    json_response,
)
from quakealert.errors import InvalidRequest
from quakealert.model import STATUSES, Event

routes = web.RouteTableDef()


def iso(at: Any) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def event_to_json(e: Event) -> dict[str, Any]:
    """The public shape of an event: preferred origin plus every contributing source."""
    return {
        "id": e.id,
        "time": iso(e.origin_at),
        "latitude": e.latitude,
        "longitude": e.longitude,
        "depth_km": e.depth_km,
        "magnitude": e.magnitude,
        "mag_type": e.mag_type,
        "status": e.status,
        "event_type": e.event_type,
        "preferred_source": e.preferred_source,
        "place": e.place,
        "updated": iso(e.updated_at),
        "review_flags": list(e.review_flags),
        "sources": [
            {"source": c.source, "source_id": c.source_id, "time": iso(c.origin_at),
             "latitude": c.latitude, "longitude": c.longitude, "depth_km": c.depth_km,
             "magnitude": c.magnitude, "mag_type": c.mag_type, "status": c.status,
             "event_type": c.event_type, "updated": iso(c.updated_at)}
            for c in e.contributors
        ],
    }


def event_type_patterns(raw: str | None) -> tuple[str, ...] | None:
    """``eventtype=earthquake,*blast`` as lower-case patterns; None when not given."""
    if raw is None:
        return None
    patterns = tuple(t.strip().lower() for t in raw.split(",") if t.strip())
    if not patterns:
        raise InvalidRequest("eventtype: give at least one type")
    return patterns


@routes.get("/api/v1/events")
async def list_events(request: web.Request) -> web.Response:
    """Events, newest first, with time, magnitude, circle/box, source, status and type filters.

    ``eventtype`` is a comma-separated list of QuakeML event types (``*``/``?`` wildcards, as
    in fdsnws-event); an event whose feeds gave no type counts as "earthquake".
    """
    q = request.query
    lat = get_float(request, "latitude", "lat", lo=-90, hi=90)
    lon = get_float(request, "longitude", "lon", lo=-180, hi=180)
    radius = get_float(request, "maxradius_km", lo=0, hi=20_100)
    if radius is not None and (lat is None or lon is None):
        raise InvalidRequest("maxradius_km needs latitude and longitude")
    box_vals = [get_float(request, n, lo=-90, hi=90) for n in ("minlatitude", "maxlatitude")]
    box_vals += [get_float(request, n, lo=-180, hi=180) for n in ("minlongitude", "maxlongitude")]
    box = None
    if any(v is not None for v in box_vals):
        la0, la1, lo0, lo1 = box_vals
        box = (la0 if la0 is not None else -90, la1 if la1 is not None else 90,
               lo0 if lo0 is not None else -180, lo1 if lo1 is not None else 180)
        if box[0] > box[1]:
            raise InvalidRequest("minlatitude must not exceed maxlatitude")
    start, end = get_time(request, "starttime", "start"), get_time(request, "endtime", "end")
    if start and end and start > end:
        raise InvalidRequest("starttime must not be after endtime")
    limit = get_int(request, "limit", 100)
    after = None
    if "cursor" in q:
        vals = decode_cursor(q["cursor"])
        if len(vals) != 2 or not isinstance(vals[0], (int, float)) or not isinstance(vals[1], str):
            raise InvalidRequest("cursor: not a cursor this service issued")
        after = (float(vals[0]), vals[1])
    events = request.app[STORE].events(
        starttime=start, endtime=end,
        minmagnitude=get_float(request, "minmagnitude", "minmag", lo=-10, hi=12),
        maxmagnitude=get_float(request, "maxmagnitude", "maxmag", lo=-10, hi=12),
        latitude=lat if radius is not None else None,
        longitude=lon if radius is not None else None,
        maxradius_km=radius, box=box,
        source=q.get("source"), status=get_choice(request, "status", STATUSES),
        include_deleted=get_bool(request, "include_deleted"),
        event_types=event_type_patterns(q.get("eventtype")),
        after=after, limit=limit + 1,
    )
    body: dict[str, Any] = {"events": [event_to_json(e) for e in events[:limit]]}
    if len(events) > limit:
        last = events[limit - 1]
        body["next_cursor"] = encode_cursor([last.origin_at.timestamp(), last.id])
    changed = max((e.updated_at for e in events[:limit] if e.updated_at), default=None)
    return json_response(request, body, last_modified=changed)


@routes.get("/api/v1/events/{id}")
async def get_event(request: web.Request) -> web.Response:
    """One event with its contributors and review flags."""
    event = request.app[STORE].event(request.match_info["id"])
    return json_response(request, {"event": event_to_json(event)}, last_modified=event.updated_at)


@routes.get("/api/v1/events/{id}/history")
async def get_event_history(request: web.Request) -> web.Response:
    """Every report version and revision of one event, oldest first."""
    store = request.app[STORE]
    history = store.event_history(request.match_info["id"])
    return json_response(request, {"event_id": request.match_info["id"], "history": history})
