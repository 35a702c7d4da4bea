"""The Maizhokunggar replay on every channel: a Web Push that an independent RFC 8291
implementation decrypts, a signed webhook, the console, and CAP 1.2 that validates."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import http_ece
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from quakealert.api.app import make_app
from quakealert.channels import make_channels
from quakealert.channels.vapid import Vapid
from quakealert.config import Settings
from quakealert.service.dispatch import Outbox
from quakealert.service.pipeline import Pipeline
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscriber, b64url
from tests.conftest import FIXTURES
from tests.scenario import feed_scenario

LHASA = (29.65, 91.13)
XSD = etree.XMLSchema(etree.parse(str(FIXTURES / "cap" / "cap-1.2.xsd")))


class Receiver:
    """A push service and a webhook gateway on 127.0.0.1 that keep what they get."""

    def __init__(self) -> None:
        self.pushes: list[tuple[dict[str, str], bytes]] = []
        self.hooks: list[tuple[dict[str, str], bytes]] = []

    async def push(self, request: web.Request) -> web.Response:
        self.pushes.append((dict(request.headers), await request.read()))
        return web.Response(status=201)

    async def hook(self, request: web.Request) -> web.Response:
        self.hooks.append((dict(request.headers), await request.read()))
        return web.Response(status=200)


@pytest.fixture
async def receiver(aiohttp_server):  # type: ignore[no-untyped-def]
    r = Receiver()
    app = web.Application()
    app.router.add_post("/push/{id}", r.push)
    app.router.add_post("/hook", r.hook)
    server = await aiohttp_server(app)
    r.base = str(server.make_url("/"))  # type: ignore[attr-defined]
    return r


async def test_scenario_reaches_every_channel(receiver: Receiver, tmp_path: Path, aiohttp_client,
                                              capsys) -> None:  # type: ignore[no-untyped-def]
    """Lhasa residents on Web Push, webhook and console get the M4.5's report and the swarm
    advisory; the M4.0 of 11-08, not felt in Lhasa, brings no summary (the real list,
    background absorbed)."""
    store = Store.open(tmp_path / "q.sqlite")
    t0 = datetime(2024, 10, 1, tzinfo=UTC)
    ua_key = ec.generate_private_key(ec.SECP256R1())
    ua_pub = ua_key.public_key().public_numbers()
    p256dh = b64url(b"\x04" + ua_pub.x.to_bytes(32, "big") + ua_pub.y.to_bytes(32, "big"))
    auth = b"0123456789abcdef"
    add_subscriber(store.conn, NewSubscriber(*LHASA, ("zh", "bo"), "webpush",
                                             f"{receiver.base}push/1", p256dh=p256dh,
                                             auth=b64url(auth)), now=t0)
    add_subscriber(store.conn, NewSubscriber(*LHASA, ("zh", "en"), "webhook",
                                             f"{receiver.base}hook", secret="office-secret"),
                   now=t0)
    add_subscriber(store.conn, NewSubscriber(*LHASA, ("en",), "console", "demo"), now=t0)
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path / "var",
                        sections={"webpush": {"allow_insecure_endpoints": True}})
    pipeline = Pipeline(store, settings, exercise=True)
    feed_scenario(store, pipeline, datetime(2024, 11, 9, tzinfo=UTC))

    vapid = Vapid(ec.generate_private_key(ec.SECP256R1()), "mailto:duty@example.org")
    import aiohttp

    async with aiohttp.ClientSession() as session:
        outbox = Outbox(store, make_channels(settings, vapid=vapid), session)
        while await outbox.drain_once(datetime.now(UTC)):
            pass
        # the M4.5 struck at 04:19 Beijing time: the felt report goes now; the swarm advisory
        # (not urgent) waits until 07:30
        assert len(receiver.pushes) == 1 and len(receiver.hooks) == 1
        morning = datetime.now(UTC) + timedelta(hours=3, minutes=12)
        while await outbox.drain_once(morning):
            pass

    # Web Push: two pushes (report, advisory), same Topic, decrypted by http_ece
    assert len(receiver.pushes) == 2
    topics = {h["Topic"] for h, _ in receiver.pushes}
    assert len(topics) == 1
    payloads = []
    for headers, body in receiver.pushes:
        assert headers["Content-Encoding"] == "aes128gcm" and int(headers["TTL"]) > 0
        assert headers["Authorization"].startswith("vapid t=")
        plain = http_ece.decrypt(body, private_key=ua_key, auth_secret=auth, version="aes128gcm")
        payloads.append(json.loads(plain))
    assert payloads[0]["lang"] == "zh" and "4.5" in payloads[0]["title"]
    assert "演练" in payloads[0]["title"]  # a replay is an exercise, marked as such
    assert "震群" in payloads[1]["title"]

    # Webhook: two signed deliveries the office's gateway can verify with the documented recipe
    assert len(receiver.hooks) == 2
    for headers, body in receiver.hooks:
        ts = headers["X-Quakealert-Timestamp"]
        mac = hmac.new(b"office-secret", f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers["X-Quakealert-Signature"] == f"sha256={mac}"
        assert json.loads(body)["exercise"] is True

    # Console: the demo resident's English text
    out = capsys.readouterr().out
    assert "EXERCISE" in out and "Stay calm" in out  # intensity III at Lhasa: reassurance

    # CAP (public): the feed lists both notices and each validates against the CAP 1.2 schema
    client = await aiohttp_client(make_app(settings, store=store))
    feed = await client.get("/cap/alerts.atom")
    assert feed.status == 200
    ids = [e.text.rsplit("/", 1)[-1].removesuffix(".xml") for e in etree.parse(
        io.BytesIO(await feed.read())).iter("{http://www.w3.org/2005/Atom}id")][1:]
    assert len(ids) >= 2
    for nid in ids:
        resp = await client.get(f"/cap/{nid}.xml")
        doc = etree.parse(io.BytesIO(await resp.read()))
        XSD.assertValid(doc)
        ns = {"c": "urn:oasis:names:tc:emergency:cap:1.2"}
        assert doc.findtext("c:status", namespaces=ns) == "Exercise"
        assert {i.findtext("c:language", namespaces=ns) for i in doc.findall("c:info", ns)} == {
            "zh-CN", "bo-CN", "en-US"}
    store.close()


async def test_push_link_opens_a_readable_notice(tmp_path: Path, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """The url in a push leads to a public page with the notice's text in every language."""
    store = Store.open(tmp_path / "q.sqlite")
    add_subscriber(store.conn, NewSubscriber(*LHASA, ("zh", "bo"), "console", "demo"),
                   now=datetime(2024, 10, 1, tzinfo=UTC))
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path / "var",
                        sections={"webpush": {"allow_insecure_endpoints": True}})
    pipeline = Pipeline(store, settings, exercise=True)
    feed_scenario(store, pipeline, datetime(2024, 11, 9, tzinfo=UTC))
    notice_id, url = store.conn.execute(
        "SELECT id, url FROM notices ORDER BY created_at LIMIT 1").fetchone()
    assert url.endswith(f"/n/{notice_id}")
    client = await aiohttp_client(make_app(settings, store=store))
    page = await client.get(f"/n/{notice_id}?lang=en")
    assert page.status == 200 and page.content_type == "text/html"
    text = await page.text()
    assert "EXERCISE" in text and "no damage" in text and "墨竹工卡" in text
    assert text.index('lang="en"') < text.index('lang="zh-Hans"')  # ?lang= comes first
    assert "script-src" in page.headers["Content-Security-Policy"]
    assert (await client.get("/n/qa-n-nope")).status == 404
    store.close()
