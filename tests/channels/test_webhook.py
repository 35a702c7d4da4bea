"""Signed webhooks: the documented verification recipe accepts our requests and rejects tampering."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from aiohttp import web
from pushkit import NOW, make_notice

from quakealert.channels.base import Gone, Recipient
from quakealert.channels.webhook import WebhookChannel, build_webhook_payload

SECRET = "s3cret-s3cret-s3cret"


def gateway_verify(secret: str, headers, body: bytes, now_s: float, tolerance_s: int = 300) -> bool:
    """The recipe of docs/webhook.md, written as an office gateway would."""
    ts = headers["X-Quakealert-Timestamp"]
    if abs(now_s - int(ts)) > tolerance_s:
        return False
    expected = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Quakealert-Signature"])


def rcpt(url="https://gw.example.org/hook", languages=("zh", "en")) -> Recipient:
    return Recipient(subscriber_id=7, channel="webhook", target=url, languages=languages,
                     secret=SECRET, delivery_id=42)


def test_payload_and_signature():
    """The body carries ids, kind, msg_type, exercise and messages in the gateway's languages."""
    req = build_webhook_payload(make_notice(exercise=True), rcpt(), now=NOW)
    body = json.loads(req.body)
    assert body["notice_id"] == "n-20241106-1" and body["sequence_id"] == "seq-maizhokunggar-2024"
    assert body["kind"] == "felt_guidance" and body["msg_type"] == "Alert"
    assert body["exercise"] is True and body["delivery_id"] == 42
    assert set(body["messages"]) == {"zh", "en"}
    assert body["messages"]["zh"]["title"] == "【演练】墨竹工卡县4.5级地震"  # marker once
    assert body["messages"]["en"]["title"] == "EXERCISE: M4.5 earthquake, Maizhokunggar"
    # SMS text per chosen language, in the gateway's order, each with the link to the notice
    assert [m["lang"] for m in body["sms"]] == [m for m in rcpt().languages if m in ("zh", "en")]
    for m in body["sms"]:
        assert m["text"] == f"{m['title']}\n{m['body']}\nhttps://example.org/n/1?lang=" + (
            body["sms"][0]["lang"])
    assert req.headers["X-Quakealert-Delivery"] == "42"
    assert gateway_verify(SECRET, req.headers, req.body, NOW.timestamp())
    assert not gateway_verify("wrong-secret-wrong", req.headers, req.body, NOW.timestamp())
    assert not gateway_verify(SECRET, req.headers, req.body + b" ", NOW.timestamp())
    assert not gateway_verify(SECRET, req.headers, req.body, NOW.timestamp() + 3600)  # replay


async def test_deliver(aiohttp_server, aiohttp_client):
    """2xx ok; 503 with Retry-After is a retryable result; 404 fails; 410 raises Gone."""
    seen = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(gateway_verify(SECRET, request.headers, body, NOW.timestamp()))
        code = int(request.match_info["code"])
        return web.Response(status=code, headers={"Retry-After": "30"} if code == 503 else None)

    app = web.Application()
    app.router.add_post("/hook/{code}", hook)
    server = await aiohttp_server(app)
    client = await aiohttp_client(server)
    ch = WebhookChannel(allow_insecure=True)
    url = lambda c: str(server.make_url(f"/hook/{c}"))
    ok = await ch.deliver(make_notice(), rcpt(url(204)), client.session, now=NOW)
    assert ok.ok and ok.status == 204
    busy = await ch.deliver(make_notice(), rcpt(url(503)), client.session, now=NOW)
    assert not busy.ok and busy.status == 503 and busy.retry_after_s == 30
    missing = await ch.deliver(make_notice(), rcpt(url(404)), client.session, now=NOW)
    assert not missing.ok and not missing.gone and missing.status == 404
    with pytest.raises(Gone):
        await ch.deliver(make_notice(), rcpt(url(410)), client.session, now=NOW)
    assert seen == [True, True, True, True]
