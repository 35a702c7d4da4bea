"""Request limits: per-IP token buckets for public route groups, and per-route body-size caps."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from quakealert.api.problems import Handler, problem
from quakealert.errors import ConfigError

# Defaults per route group; `[ratelimit.<group>] rate_per_s / burst` override them.
DEFAULT_GROUPS: dict[str, tuple[float, float]] = {
    "public": (5.0, 60.0),  # healthz, CAP, FDSN, events: a page reload fetches a few at once
    "subscriptions": (0.2, 10.0),  # writes to the subscriber table
    "login": (0.2, 5.0),  # tokens cannot be guessed, but failed logins still cost a lookup
}
MAX_CLIENTS = 20_000  # buckets kept per group before the least recently seen are dropped
DEFAULT_JSON_MAX_BYTES = 16 * 1024
LOGIN_MAX_BYTES = 4 * 1024
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class BucketParams:
    """Refill rate and capacity of one route group's buckets."""

    rate_per_s: float
    burst: float


class RateLimiter:
    """Token buckets keyed by (group, client); O(1) per request, bounded memory."""

    def __init__(
        self,
        groups: Mapping[str, BucketParams],
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.groups = dict(groups)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: dict[str, OrderedDict[str, tuple[float, float]]] = {
            g: OrderedDict() for g in self.groups
        }

    def take(self, group: str, client: str) -> float:
        """Spend one token: 0.0 if allowed, else the seconds until one is available."""
        params = self.groups.get(group)
        if params is None:
            return 0.0
        buckets = self._buckets[group]
        now = self.clock()
        tokens, last = buckets.pop(client, (params.burst, now))
        tokens = min(params.burst, tokens + (now - last) * params.rate_per_s)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / params.rate_per_s if params.rate_per_s > 0 else math.inf
        buckets[client] = (tokens, now)
        if len(buckets) > self.max_clients:
            buckets.popitem(last=False)
        return wait


def limiter_from_settings(section: Mapping[str, Any]) -> RateLimiter | None:
    """The limiter described by the `[ratelimit]` table, or None when `enabled = false`."""
    if not section.get("enabled", True):
        return None
    groups = {}
    for name, (rate, burst) in DEFAULT_GROUPS.items():
        table = section.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"[ratelimit.{name}] must be a table")
        params = BucketParams(float(table.get("rate_per_s", rate)), float(table.get("burst", burst)))
        if params.rate_per_s < 0 or params.burst < 1:
            raise ConfigError(f"[ratelimit.{name}]: rate_per_s >= 0 and burst >= 1")
        groups[name] = params
    return RateLimiter(groups, max_clients=int(section.get("max_clients", MAX_CLIENTS)))


def client_key(request: web.Request, *, trust_forwarded_for: bool = False) -> str:
    """The client's address; IPv6 clients are grouped by /64, the block one host usually gets."""
    addr = None
    if trust_forwarded_for:
        # Only the last hop was written by our own proxy; earlier ones are client-controlled.
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        addr = forwarded or None
    addr = addr or request.remote or "unknown"
    if ":" in addr:
        try:
            return ipaddress.IPv6Address(addr).exploded[:19] + "::/64"
        except ValueError:
            return addr
    return addr


def ratelimit_middleware(
    limiter: RateLimiter,
    group_of: Callable[[web.Request], str | None],
    *,
    trust_forwarded_for: bool = False,
) -> Any:
    """Answer 429 with Retry-After once a client has spent its bucket for the route's group."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        group = group_of(request)
        if group is not None:
            wait = limiter.take(group, client_key(request, trust_forwarded_for=trust_forwarded_for))
            if wait > 0:
                retry_s = max(1, math.ceil(min(wait, 86_400)))
                resp = problem(429, f"too many requests; retry in {retry_s} s",
                               instance=request.path)
                resp.headers["Retry-After"] = str(retry_s)
                return resp
        return await handler(request)

    return middleware


def body_limit(method: str, path: str, json_max_bytes: int) -> int | None:
    """The body cap for a request, or None for the app-wide default."""
    if method not in WRITE_METHODS:
        return None
    if path in ("/login", "/logout"):
        return LOGIN_MAX_BYTES
    if path.startswith("/api/"):
        return json_max_bytes
    return None


def body_limit_middleware(json_max_bytes: int = DEFAULT_JSON_MAX_BYTES) -> Any:
    """413 problem for bodies over the route's cap, by Content-Length or while reading."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        cap = body_limit(request.method, request.path, json_max_bytes)
        if cap is None:
            return await handler(request)
        length = request.content_length
        if length is not None and length > cap:
            return problem(413, f"request body over {cap} bytes", instance=request.path)
        # A chunked body has no length up front: the clone's read()/json() stops at the cap.
        return await handler(request.clone(client_max_size=cap))

    return middleware
