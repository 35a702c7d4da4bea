"""Per-IP token buckets on public routes: 429 problem with Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from quakealert.api.app import make_app
from quakealert.api.ratelimit import BucketParams, RateLimiter, client_key
from quakealert.config import Settings
from quakealert.store.auth import create_token
from quakealert.store.sqlite import Store


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_burst_then_waits_for_refill():
    """Burst requests pass; the next waits 1/rate seconds; refill restores it."""
    clock = FakeClock()
    limiter = RateLimiter({"public": BucketParams(rate_per_s=2.0, burst=3)}, clock=clock)
    assert [limiter.take("public", "10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("public", "10.0.0.1") == pytest.approx(0.5)
    assert limiter.take("public", "10.0.0.2") == 0.0  # another client has its own bucket
    clock.t += 0.5
    assert limiter.take("public", "10.0.0.1") == 0.0
    assert limiter.take("public", "10.0.0.1") > 0
    clock.t += 3600
    assert [limiter.take("public", "10.0.0.1") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("public", "10.0.0.1") > 0  # refill stops at burst


def test_unknown_group_is_unlimited():
    """A group without parameters never limits."""
    limiter = RateLimiter({"public": BucketParams(1.0, 1)})
    assert all(limiter.take("other", "x") == 0.0 for _ in range(10))


def test_memory_is_bounded():
    """Beyond max_clients the least recently seen client is dropped."""
    clock = FakeClock()
    limiter = RateLimiter({"public": BucketParams(0.0, 1)}, max_clients=2, clock=clock)
    for ip in ("a", "b", "c"):
        limiter.take("public", ip)
    assert limiter.take("public", "c") > 0
    assert limiter.take("public", "a") == 0.0  # forgotten, so full again
    assert len(limiter._buckets["public"]) == 2


@pytest.mark.parametrize(("remote", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:0db8:0001:0002::/64"),
    ("2001:db8:1:2:bbbb::9", "2001:0db8:0001:0002::/64"),
])
def test_client_key_groups_ipv6_by_64(remote, key):
    """IPv4 clients are keyed by address, IPv6 clients by their /64."""
    request = make_mocked_request("GET", "/healthz").clone(remote=remote)
    assert client_key(request) == key


def test_forwarded_for_only_when_trusted():
    """X-Forwarded-For is used (its last hop) only when configured."""
    request = make_mocked_request("GET", "/", headers={
        "X-Forwarded-For": "6.6.6.6, 198.51.100.4"}).clone(remote="127.0.0.1")
    assert client_key(request) == "127.0.0.1"
    assert client_key(request, trust_forwarded_for=True) == "198.51.100.4"


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "q.sqlite")
    yield s
    s.close()


def app_with(store: Store, tmp_path: Path, ratelimit: dict):
    return make_app(Settings(store_path=tmp_path / "q.sqlite", sections={"ratelimit": ratelimit}),
                    store=store)


async def test_public_route_answers_429_with_retry_after(aiohttp_client, store, tmp_path):
    """Over the public budget: 429 problem JSON with Retry-After; staff tokens are not limited."""
    client = await aiohttp_client(app_with(store, tmp_path, {"public": {"rate_per_s": 0.1,
                                                                       "burst": 3}}))
    statuses = [(await client.get("/healthz")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    resp = await client.get("/api/v1/events")  # the same group shares the bucket
    assert resp.status == 429
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Retry-After"] == "10"
    assert (await resp.json())["status"] == 429
    secret = create_token(store.conn, "read", "ops", now=datetime.now(UTC))[1]
    authed = await client.get("/api/v1/events", headers={"Authorization": f"Bearer {secret}"})
    assert authed.status == 200


async def test_login_has_its_own_small_budget(aiohttp_client, store, tmp_path):
    """Failed logins and bad bearer tokens share the login bucket."""
    client = await aiohttp_client(app_with(store, tmp_path, {"login": {"rate_per_s": 0.01,
                                                                      "burst": 2}}))
    first = await client.post("/login", data={"token": "nope"})
    assert first.status == 401
    bad = await client.get("/api/v1/sources", headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    third = await client.post("/login", data={"token": "nope"})
    assert third.status == 429
    assert int(third.headers["Retry-After"]) == 100
    fourth = await client.get("/api/v1/sources", headers={"Authorization": "Bearer nope"})
    assert fourth.status == 429
    assert (await client.get("/healthz")).status == 200  # other groups unaffected


async def test_protected_routes_are_not_counted(aiohttp_client, store, tmp_path):
    """Anonymous requests to protected routes get 401, never 429 from the public bucket."""
    client = await aiohttp_client(app_with(store, tmp_path, {"public": {"rate_per_s": 0,
                                                                       "burst": 1}}))
    assert [(await client.get("/metrics")).status for _ in range(3)] == [401, 401, 401]
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/healthz")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "86400"  # rate 0: capped, never "inf"


async def test_disabled(aiohttp_client, store, tmp_path):
    """`enabled = false` turns rate limiting off."""
    client = await aiohttp_client(app_with(store, tmp_path, {
        "enabled": False, "public": {"rate_per_s": 0, "burst": 1}}))
    assert [(await client.get("/healthz")).status for _ in range(5)] == [200] * 5
