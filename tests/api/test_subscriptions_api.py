"""POST/DELETE /api/v1/subscriptions: validation, coarsened places, tokens, rate limit."""

from __future__ import annotations

import json
import logging

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from quakealert.api import subscriptions
from quakealert.api.app import make_app
from quakealert.api.keys import SETTINGS, STORE
from quakealert.config import Settings
from quakealert.store.subscribers import b64url, hash_token

P256 = b64url(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
AUTH = b64url(b"0123456789abcdef")


def push_body(**kw):
    body = {"latitude": 29.654321, "longitude": 91.132109, "channel": "webpush",
            "subscription": {"endpoint": "https://fcm.googleapis.com/fcm/send/abc",
                             "keys": {"p256dh": P256, "auth": AUTH}, "expirationTime": None}}
    body.update(kw)
    return body


def make_settings(tmp_path, **sections) -> Settings:
    base = {"ratelimit": {"enabled": False}, "subscriptions": {"rate_per_min": 1000}}
    base.update(sections)
    return Settings(store_path=tmp_path / "t.sqlite", var_dir=tmp_path / "var", sections=base)


@pytest.fixture
async def client(tmp_path, store, aiohttp_client):
    return await aiohttp_client(make_app(make_settings(tmp_path), store=store))


async def test_subscribe_webpush_stores_coarse_place(client, store, caplog):
    """201 with id and token; the place is stored to 0.01 degree, the token only as a hash, and
    the log names the id, never the place."""
    caplog.set_level(logging.INFO)
    resp = await client.post("/api/v1/subscriptions", json=push_body(min_intensity=4))
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert set(body) == {"id", "token"}
    row = store.conn.execute("SELECT * FROM subscribers").fetchone()
    assert (row["latitude"], row["longitude"]) == (29.65, 91.13)
    assert row["public_id"] == body["id"] and row["token_hash"] == hash_token(body["token"])
    assert body["token"] not in json.dumps(dict(row))
    assert row["languages"] == "zh,bo" and row["min_intensity"] == 4 and row["channel"] == "webpush"
    assert row["area"] == "chengguan"  # nearest seat in messages/places.toml
    assert any(getattr(r, "subscriber_id", None) == body["id"] for r in caplog.records)
    assert "29.65" not in caplog.text and "91.13" not in caplog.text


async def test_subscribe_webhook_generates_secret_once(client, store):
    """A webhook without a secret gets one, returned in the 201 and stored for signing."""
    resp = await client.post("/api/v1/subscriptions", json={
        "latitude": 29.85, "longitude": 92.25, "channel": "webhook", "languages": ["en"],
        "url": "https://gw.example.org/hook"})
    assert resp.status == 201
    body = await resp.json()
    assert len(body["secret"]) >= 32
    row = store.conn.execute("SELECT secret, languages FROM subscribers").fetchone()
    assert row["secret"] == body["secret"] and row["languages"] == "en"


BAD = [
    ("missing latitude", {k: v for k, v in push_body().items() if k != "latitude"}, "latitude"),
    ("latitude out of range", push_body(latitude=91), "latitude"),
    ("longitude not a number", push_body(longitude="east"), "longitude"),
    ("nan", push_body(latitude=float("nan")), "latitude"),
    ("unknown language", push_body(languages=["zh", "fr"]), "language"),
    ("empty languages", push_body(languages=[]), "languages"),
    ("unknown channel", push_body(channel="sms"), "channel"),
    ("http endpoint", push_body(subscription={"endpoint": "http://push.example/x",
                                              "keys": {"p256dh": P256, "auth": AUTH}}), "https"),
    ("loopback endpoint", push_body(subscription={"endpoint": "https://127.0.0.1/x",
                                                  "keys": {"p256dh": P256, "auth": AUTH}}),
     "public"),
    ("p256dh not base64", push_body(subscription={"endpoint": "https://p.example/x",
                                                  "keys": {"p256dh": "!!!", "auth": AUTH}}),
     "p256dh"),
    ("p256dh short", push_body(subscription={"endpoint": "https://p.example/x",
                                             "keys": {"p256dh": P256[:40], "auth": AUTH}}),
     "65 bytes"),
    ("p256dh off curve", push_body(subscription={
        "endpoint": "https://p.example/x",
        "keys": {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": AUTH}}), "P-256"),
    ("auth wrong size", push_body(subscription={"endpoint": "https://p.example/x",
                                                "keys": {"p256dh": P256, "auth": b64url(b"x" * 8)}}),
     "16 bytes"),
    ("no subscription", push_body(subscription=None), "subscription"),
    ("webhook bad url", {"latitude": 1, "longitude": 2, "channel": "webhook", "url": "ftp://x"},
     "https"),
    ("min_intensity", push_body(min_intensity=13), "min_intensity"),
    ("unknown field", push_body(place="home"), "place"),
]


@pytest.mark.parametrize(("case", "body", "mentions"), BAD, ids=[b[0] for b in BAD])
async def test_invalid_subscriptions(client, store, case, body, mentions):
    """Each invalid field gives a 400 problem naming it; nothing is stored."""
    resp = await client.post("/api/v1/subscriptions", data=json.dumps(body),
                             headers={"Content-Type": "application/json"})
    assert resp.status == 400, case
    assert resp.content_type == "application/problem+json"
    assert mentions in (await resp.json())["detail"]
    assert store.conn.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0


async def test_not_json_and_too_big(client):
    """A body that is not JSON is a 400; a body over the limit is a 413."""
    resp = await client.post("/api/v1/subscriptions", data=b"{not json")
    assert resp.status == 400 and "JSON" in (await resp.json())["detail"]
    resp = await client.post("/api/v1/subscriptions", data=b"{" + b" " * 20_000 + b"}")
    assert resp.status == 413


async def test_insecure_endpoints_only_when_allowed(tmp_path, store, aiohttp_client):
    """http://127.0.0.1 endpoints are accepted only with allow_insecure_endpoints (tests, demo)."""
    body = push_body(subscription={"endpoint": "http://127.0.0.1:9/push",
                                   "keys": {"p256dh": P256, "auth": AUTH}})
    client = await aiohttp_client(make_app(make_settings(
        tmp_path, webpush={"allow_insecure_endpoints": True}), store=store))
    assert (await client.post("/api/v1/subscriptions", json=body)).status == 201
    body["subscription"]["endpoint"] = "http://push.example.org/x"  # still not a public http
    assert (await client.post("/api/v1/subscriptions", json=body)).status == 400


async def test_delete_needs_the_token(client, store):
    """Wrong token and unknown id answer alike (404); the right token deletes (204)."""
    body = await (await client.post("/api/v1/subscriptions", json=push_body())).json()
    url = f"/api/v1/subscriptions/{body['id']}"
    assert (await client.delete(url)).status == 401
    wrong = await client.delete(url, headers={"Authorization": "Bearer nope"})
    unknown = await client.delete("/api/v1/subscriptions/nobody",
                                  headers={"Authorization": f"Bearer {body['token']}"})
    assert wrong.status == unknown.status == 404
    assert (await wrong.json())["detail"] == (await unknown.json())["detail"]
    ok = await client.delete(url, headers={"Authorization": f"Bearer {body['token']}"})
    assert ok.status == 204
    assert store.conn.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 0


async def test_rate_limited_per_ip(tmp_path, store, aiohttp_client):
    """Past rate_per_min requests a client gets 429 with Retry-After."""
    client = await aiohttp_client(make_app(make_settings(
        tmp_path, subscriptions={"rate_per_min": 3}), store=store))
    codes = [(await client.post("/api/v1/subscriptions", json=push_body())).status
             for _ in range(3)]
    assert codes == [201, 201, 201]
    resp = await client.post("/api/v1/subscriptions", json=push_body())
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1


async def test_vapid_public_key(tmp_path, store, aiohttp_client):
    """The browser gets the application server key; the private key is kept with mode 0600.

    Served by the subscriptions routes alone: whether duty auth lets it through is auth.py's
    policy (it must be public)."""
    app = web.Application()
    app[SETTINGS] = make_settings(tmp_path)
    app[STORE] = store
    subscriptions.setup(app)
    app.add_routes(subscriptions.routes)
    client = await aiohttp_client(app)
    resp = await client.get("/api/v1/webpush/vapid-public-key")
    assert resp.status == 200
    key = (await resp.json())["publicKey"]
    assert len(key) == 87
    pem = tmp_path / "var" / "vapid_private.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    again = await (await client.get("/api/v1/webpush/vapid-public-key")).json()
    assert again["publicKey"] == key
