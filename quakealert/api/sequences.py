"""Sequences for duty staff: `GET /api/v1/sequences` and `GET /api/v1/sequences/{id}`."""

from __future__ import annotations

from aiohttp import web

from quakealert.api.keys import STORE
from quakealert.api.params import get_choice, get_float, get_int, get_time, json_response
from quakealert.core.classify import TYPES
from quakealert.store.sequences import get_sequence, list_sequences

routes = web.RouteTableDef()


@routes.get("/api/v1/sequences")
async def get_sequences(request: web.Request) -> web.Response:
    """Recent and active sequences: type, reasons, largest event, context line."""
    since = get_time(request, "since")
    min_magnitude = get_float(request, "minmagnitude", "minmag", lo=-10, hi=12)
    kind = get_choice(request, "type", TYPES)
    limit = get_int(request, "limit", 100)
    rows = list_sequences(request.app[STORE].conn, since=since, min_magnitude=min_magnitude,
                          type=kind, limit=limit)
    return json_response(request, {"sequences": rows})


@routes.get("/api/v1/sequences/{id}")
async def get_one_sequence(request: web.Request) -> web.Response:
    """One sequence with members, type history, statistics and forecast (404 if unknown)."""
    seq = get_sequence(request.app[STORE].conn, request.match_info["id"])
    return json_response(request, {"sequence": seq})
