"""Sequences for duty staff: `GET /api/v1/sequences` and `GET /api/v1/sequences/{id}`.

The list is the hot path (dashboards poll it): its body is joined from list entries the store
keeps rendered, and kept per query until the database changes (``Store.version``), so
a repeated request costs a dictionary look-up. ETag and 304 are those of ``json_response``.
"""

from __future__ import annotations

import hashlib
from weakref import WeakKeyDictionary

from aiohttp import web

from quakealert.api.fdsnws import ResponseCache
from quakealert.api.keys import STORE
from quakealert.api.params import (
    decode_cursor,
    encode_cursor,
    get_choice,
    get_float,
    get_int,
    get_time,
    json_response,
)
from quakealert.core.classify import TYPES
from quakealert.errors import InvalidRequest
from quakealert.store.base import Store

routes = web.RouteTableDef()

# rendered list bodies per store, keyed by the query and the store version
_CACHES: WeakKeyDictionary[Store, ResponseCache] = WeakKeyDictionary()


def _etag(body: bytes) -> str:
    """The strong ETag ``json_response`` gives the same JSON text."""
    return '"' + hashlib.blake2s(body, digest_size=12).hexdigest() + '"'


@routes.get("/api/v1/sequences")
async def get_sequences(request: web.Request) -> web.Response:
    """Recent and active sequences: type, reasons, largest event, context line."""
    since = get_time(request, "since")
    min_magnitude = get_float(request, "minmagnitude", "minmag", lo=-10, hi=12)
    kind = get_choice(request, "type", TYPES)
    limit = get_int(request, "limit", 100)
    after = None
    if "cursor" in request.query:
        vals = decode_cursor(request.query["cursor"])
        if (len(vals) != 2 or not isinstance(vals[0], (int, float))
                or not isinstance(vals[1], str)):
            raise InvalidRequest("cursor: not a cursor this service issued")
        after = (float(vals[0]), vals[1])
    store = request.app[STORE]
    cache = _CACHES.get(store)
    if cache is None:
        cache = _CACHES[store] = ResponseCache()
    version = store.version()
    key = (since, min_magnitude, kind, limit, after, version)
    hit = cache.get(key) if version is not None else None
    if hit is None:
        body = store.sequences.list_sequences_body(
            since=since, min_magnitude=min_magnitude, type=kind, limit=limit, after=after,
            cursor=lambda last_at, seq_id: encode_cursor([last_at, seq_id]))
        hit = (body, _etag(body))
        if version is not None:
            cache.put(key, hit)
    body, etag = hit
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", charset="utf-8",
                        headers=headers)


@routes.get("/api/v1/sequences/{id}")
async def get_one_sequence(request: web.Request) -> web.Response:
    """One sequence with members, type history, statistics and forecast (404 if unknown)."""
    seq = request.app[STORE].sequences.get_sequence(request.match_info["id"])
    return json_response(request, {"sequence": seq})
