"""Resident subscriptions: subscribe (Web Push or webhook), unsubscribe with the management token.

Public endpoints (no duty-staff token), limited per client IP by a token bucket
(``[subscriptions] rate_per_min``). Places are coarsened before storage and never logged.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web

from quakealert.api.keys import RUNTIME, SETTINGS, STORE
from quakealert.api.problems import problem
from quakealert.errors import InvalidRequest
from quakealert.store.subscribers import parse_subscriber

log = logging.getLogger(__name__)

MAX_SUBSCRIPTION_BYTES = 8 * 1024
DEFAULT_RATE_PER_MIN = 20

routes = web.RouteTableDef()


@dataclass(slots=True)
class RateLimiter:
    """Token buckets per client: ``rate_per_min`` tokens a minute, bursts up to that many."""

    rate_per_min: float
    clock: Callable[[], float] = time.monotonic
    max_clients: int = 50_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0 when a request may go ahead, else the seconds until one token is back."""
        now = self.clock()
        rate_s = self.rate_per_min / 60.0
        tokens, at = self._buckets.get(key, (self.rate_per_min, now))
        tokens = min(self.rate_per_min, tokens + (now - at) * rate_s)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_clients:
                self._prune(now, rate_s)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / rate_s

    def _prune(self, now: float, rate_s: float) -> None:
        # Forget clients whose bucket is full again: they are indistinguishable from new ones.
        full = [k for k, (t, at) in self._buckets.items()
                if t + (now - at) * rate_s >= self.rate_per_min]
        for k in full:
            del self._buckets[k]


LIMITER = web.AppKey("subscriptions_limiter", RateLimiter)
_VAPID = web.AppKey("subscriptions_vapid", dict)


def setup(app: web.Application) -> None:
    """The rate limiter, sized from ``[subscriptions] rate_per_min`` (0 = off)."""
    section = app[SETTINGS].section("subscriptions")
    rate = float(section.get("rate_per_min", DEFAULT_RATE_PER_MIN))
    if rate > 0:  # 0 turns this limiter off (auth.py's [ratelimit.subscriptions] still applies)
        app[LIMITER] = RateLimiter(rate)
    app[_VAPID] = {}


def _limited(request: web.Request) -> web.Response | None:
    limiter = request.app.get(LIMITER)
    if limiter is None:
        return None
    wait_s = limiter.take(request.remote or "unknown")
    if wait_s <= 0:
        return None
    resp = problem(429, "too many subscription requests from this address; try again later",
                   instance=request.path)
    resp.headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
    return resp


async def _json_body(request: web.Request) -> object:
    if request.content_length is not None and request.content_length > MAX_SUBSCRIPTION_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_SUBSCRIPTION_BYTES,
                                            actual_size=request.content_length)
    raw = await request.content.read(MAX_SUBSCRIPTION_BYTES + 1)
    if len(raw) > MAX_SUBSCRIPTION_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_SUBSCRIPTION_BYTES,
                                            actual_size=len(raw))
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequest("body must be JSON") from None


def _allow_insecure(request: web.Request) -> bool:
    return bool(request.app[SETTINGS].section("webpush").get("allow_insecure_endpoints", False))


@routes.post("/api/v1/subscriptions")
async def subscribe(request: web.Request) -> web.Response:
    """Create a subscription; 201 with its id and management token (and a generated secret)."""
    if (limited := _limited(request)) is not None:
        return limited
    data = await _json_body(request)
    sub = parse_subscriber(data, allow_insecure=_allow_insecure(request))
    created = request.app[STORE].subscribers.add_subscriber(sub, now=datetime.now(UTC))
    log.info("subscriber created", extra={"subscriber_id": created.id, "channel": sub.channel})
    body = {"id": created.id, "token": created.token}
    if created.secret is not None:
        body["secret"] = created.secret
    return web.json_response(body, status=201, headers={"Cache-Control": "no-store"})


@routes.delete("/api/v1/subscriptions/{id}")
async def unsubscribe(request: web.Request) -> web.Response:
    """Delete a subscription with its token; 404 alike for a wrong token and an unknown id."""
    if (limited := _limited(request)) is not None:
        return limited
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        resp = problem(401, "send the subscription's token as Authorization: Bearer <token>",
                       instance=request.path)
        resp.headers["WWW-Authenticate"] = 'Bearer realm="subscriptions"'
        return resp
    public_id = request.match_info["id"]
    if not request.app[STORE].subscribers.delete_subscriber(public_id, token.strip()):
        return problem(404, "no such subscription, or the token does not match",
                       instance=request.path)
    log.info("subscriber deleted by its owner", extra={"subscriber_id": public_id})
    return web.Response(status=204)


@routes.get("/api/v1/webpush/vapid-public-key")
async def vapid_public_key(request: web.Request) -> web.Response:
    """The VAPID application server key a browser passes to ``pushManager.subscribe``."""
    from quakealert.channels.vapid import load_vapid

    vapid = getattr(request.app.get(RUNTIME), "vapid", None)
    if vapid is None:
        cache = request.app[_VAPID]
        if "vapid" not in cache:  # loaded (or generated) on first use, not at app creation
            cache["vapid"] = load_vapid(request.app[SETTINGS])
        vapid = cache["vapid"]
    return web.json_response({"publicKey": vapid.application_server_key})


@routes.get("/api/v1/subscribers/counts")
async def subscriber_counts(request: web.Request) -> web.Response:
    """Duty staff: subscriber counts by channel and by area (never places)."""
    subscribers = request.app[STORE].subscribers
    by_channel = subscribers.count_by_channel()
    return web.json_response({"total": sum(by_channel.values()), "by_channel": by_channel,
                              "by_area": subscribers.count_by_area()})

