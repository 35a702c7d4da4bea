"""Web Push through the outbox: decryptable deliveries, 404/410 delete the subscription,
selection by predicted intensity feeds the outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import http_ece
import numpy as np
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from quakealert.channels.vapid import Vapid
from quakealert.channels.webpush import WebPushChannel
from quakealert.model import Message, Notice
from quakealert.service.dispatch import Outbox, OutboxSettings, select_for_event, select_recipients
from quakealert.store import outbox as ob
from quakealert.store.notices import save_notice
from quakealert.store.subscribers import (
    NewSubscriber,
    SubscriberPoints,
    add_subscribers,
    b64url,
    subscriber_points,
)

NOW = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)


def ua():
    key = ec.generate_private_key(ec.SECP256R1())
    return key, key.public_key().public_bytes(serialization.Encoding.X962,
                                              serialization.PublicFormat.UncompressedPoint)


async def test_push_fanout_and_gone(store, aiohttp_server, aiohttp_client):
    """Three subscribers: one ok (payload decrypts), one 404 and one 410 (both deleted)."""
    bodies = {}

    async def push(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        bodies[name] = (dict(request.headers), await request.read())
        return web.Response(status={"ok": 201, "e404": 404, "e410": 410}[name])

    app = web.Application()
    app.router.add_post("/push/{name}", push)
    server = await aiohttp_server(app)
    keys = {n: ua() for n in ("ok", "e404", "e410")}
    auth = b"authauthauthauth"
    add_subscribers(store.conn, [
        NewSubscriber(latitude=29.65, longitude=91.13, languages=("bo", "zh"), channel="webpush",
                      target=str(server.make_url(f"/push/{n}")), p256dh=b64url(pub),
                      auth=b64url(auth)) for n, (_, pub) in keys.items()], now=NOW)
    save_notice(store.conn, Notice(
        id="n1", sequence_id="seq-1", event_id="e1", kind="felt_guidance", msg_type="Alert",
        messages=(Message("zh", "地震", "请保持冷静"), Message("bo", "ས་ཡོམ།", "སེམས་ཁྲལ་མ་བྱེད།")),
        created_at=NOW, urgency="high"), "released")
    ids = [r[0] for r in store.conn.execute("SELECT id FROM subscribers")]
    ob.enqueue_subscribers(store.conn, "n1", ids, now=NOW)
    client = await aiohttp_client(web.Application())
    vapid = Vapid(ec.generate_private_key(ec.SECP256R1()))
    box = Outbox(store, {"webpush": WebPushChannel(vapid, allow_insecure=True)}, client.session,
                 settings=OutboxSettings())
    assert await box.drain_once(NOW) == 3
    headers, body = bodies["ok"]
    payload = json.loads(http_ece.decrypt(body, private_key=keys["ok"][0], dh=None,
                                          auth_secret=auth, version="aes128gcm"))
    assert payload["lang"] == "bo" and [m["lang"] for m in payload["messages"]] == ["bo", "zh"]
    assert headers["Urgency"] == "high" and headers["Topic"] == "seq-1"
    assert ob.counts(store.conn) == {"webpush": {"sent": 1, "gone": 2}}
    left = [r[0] for r in store.conn.execute("SELECT target FROM subscribers")]
    assert left == [str(server.make_url("/push/ok"))]


async def test_crypto_pool_gives_same_result(store, aiohttp_server, aiohttp_client):
    """With crypto_workers the payload is encrypted in a process pool and still decrypts."""
    got = []

    async def push(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/push", push)
    server = await aiohttp_server(app)
    priv, pub = ua()
    add_subscribers(store.conn, [NewSubscriber(
        latitude=1.0, longitude=1.0, languages=("en",), channel="webpush",
        target=str(server.make_url("/push")), p256dh=b64url(pub), auth=b64url(b"A" * 16))] * 3,
        now=NOW)
    save_notice(store.conn, Notice(id="n1", sequence_id="s", event_id="e", kind="test",
                                   msg_type="Alert", messages=(Message("en", "T", "B"),),
                                   created_at=NOW), "released")
    ob.enqueue_subscribers(store.conn, "n1", [1, 2, 3], now=NOW)
    client = await aiohttp_client(web.Application())
    channel = WebPushChannel(Vapid(ec.generate_private_key(ec.SECP256R1())), crypto_workers=1, allow_insecure=True)
    try:
        box = Outbox(store, {"webpush": channel}, client.session)
        assert await box.drain_once(NOW) == 3
    finally:
        channel.close()
    assert len(got) == 3 and len({b[:16] for b in got}) == 3  # a fresh salt each
    for body in got:
        assert json.loads(http_ece.decrypt(body, private_key=priv, dh=None,
                                           auth_secret=b"A" * 16, version="aes128gcm"))["body"] == "B"


def test_select_recipients_by_own_threshold():
    """A subscriber is chosen when the predicted value reaches their threshold (degree n
    covers [n-0.5, n+0.5))."""
    pts = SubscriberPoints(ids=np.array([1, 2, 3, 4, 5]), lat=np.zeros(5), lon=np.zeros(5),
                           min_intensity=np.array([3, 3, 4, 2, 4], dtype=np.int16))
    values = np.array([2.5, 2.49, 3.6, 1.0, 3.49])
    chosen = select_recipients(pts, lambda lat, lon: values)
    assert chosen.tolist() == [1, 3]


def test_lhasa_is_notified_of_the_2024_quake(store):
    """M4.5 at 29.85N 92.25E, 10 km: a Lhasa subscriber (110 km, threshold III) is chosen,
    one 1,000 km away is not (A12 + 1 sigma, DESIGN.md)."""
    add_subscribers(store.conn, [
        NewSubscriber(latitude=lat, longitude=lon, languages=("zh",), channel="webhook",
                      target="https://gw.example/h", secret="x" * 20, min_intensity=3)
        for lat, lon in ((29.65, 91.13), (29.65, 82.0))], now=NOW)
    pts = subscriber_points(store.conn)
    chosen = select_for_event(pts, magnitude=4.5, depth_km=10.0, latitude=29.85, longitude=92.25)
    assert chosen.tolist() == [pts.ids[0]]
