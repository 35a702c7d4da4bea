"""Web Push requests: headers, Topic, payload budget, VAPID JWT, and delivery to a receiver."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import http_ece
import pytest
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pushkit import NOW, UA, make_notice

from quakealert.channels.base import Gone, Recipient
from quakealert.channels.vapid import Vapid
from quakealert.channels.webpush import (
    MAX_PLAINTEXT,
    RECORD_SIZE,
    WebPushChannel,
    build_payload,
    build_webpush_request,
    push_headers,
    topic_for,
)
from quakealert.core.render import PUSH_LIMITS
from quakealert.model import Message


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


@pytest.fixture
def vapid() -> Vapid:
    return Vapid(ec.generate_private_key(ec.SECP256R1()), "mailto:duty@example.org")


def recipient(ua: UA, endpoint: str = "https://push.example.net/wpush/v2/abc",
              languages=("zh", "bo")) -> Recipient:
    return Recipient(subscriber_id=1, channel="webpush", target=endpoint, languages=languages,
                     p256dh=ua.p256dh, auth=ua.auth_b64)


def decrypt(ua: UA, body: bytes) -> dict:
    return json.loads(http_ece.decrypt(body, private_key=ua.private, dh=None,
                                       auth_secret=ua.auth, version="aes128gcm"))


def test_headers_and_payload(ua, vapid):
    """The request carries TTL, Urgency, Topic, aes128gcm and VAPID; the payload decrypts."""
    req = build_webpush_request(make_notice(), recipient(ua), vapid, now=NOW, ttl_s=3600)
    h = req.headers
    assert h["TTL"] == "3600" and h["Urgency"] == "high"
    assert h["Content-Encoding"] == "aes128gcm"
    assert h["Topic"] == "seq-maizhokunggar-2024"
    assert h["Authorization"].startswith("vapid t=") and f"k={vapid.application_server_key}" in h[
        "Authorization"]
    payload = decrypt(ua, req.body)
    assert payload["lang"] == "zh" and payload["title"] == "墨竹工卡县4.5级地震"
    assert payload["notice_id"] == "n-20241106-1"
    assert payload["sequence_id"] == "seq-maizhokunggar-2024"
    assert payload["kind"] == "felt_guidance"
    assert payload["url"] == "https://example.org/n/1?lang=zh"  # the resident's first language
    # every language the subscriber chose, in their order, and no other
    assert [m["lang"] for m in payload["messages"]] == ["zh", "bo"]


@pytest.mark.parametrize("seq", ["a" * 33, "seq:2024/11 拉萨", "x.y"])
def test_topic_is_valid_for_any_sequence_id(seq):
    """Topic is <= 32 chars of the URL-safe base64 alphabet, stable for one sequence."""
    t = topic_for(seq)
    assert 1 <= len(t) <= 32
    assert all(c.isascii() and (c.isalnum() or c in "-_") for c in t)
    assert topic_for(seq) == t and topic_for(seq + "1") != t


def test_long_stored_messages_are_shortened_not_dropped(ua, vapid):
    """A notice stored before phone-sized texts: every chosen language is shortened to its
    limits, none dropped, and the encrypted body stays one 4096-octet record."""
    long_bo = "ལྷ་ས་གྲོང་ཁྱེར་ནང་ས་ཡོམ་བྱུང་། " * 200
    notice = make_notice(messages=(Message("bo", "ས་ཡོམ།", long_bo),
                                   Message("zh", "地震", "请保持冷静。" * 100),
                                   Message("en", "Quake", "Stay calm. " * 300)))
    req = build_webpush_request(notice, recipient(ua, languages=("bo", "zh", "en")), vapid,
                                now=NOW)
    assert len(req.body) <= RECORD_SIZE
    payload = decrypt(ua, req.body)
    assert [m["lang"] for m in payload["messages"]] == ["bo", "zh", "en"]
    for m in payload["messages"]:
        max_title, max_body = PUSH_LIMITS[m["lang"]]
        assert len(m["title"]) <= max_title and len(m["body"]) == max_body
        assert m["body"].endswith("…")
    assert long_bo.startswith(payload["messages"][0]["body"][:-1].rstrip())
    assert len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()) <= (
        MAX_PLAINTEXT)


def test_rendered_push_texts_are_used():
    """A rendered notice's phone-sized title and body are what the payload carries."""
    notice = make_notice(messages=(Message("zh", "长标题", "长正文", push_title="短标题",
                                           push_body="短正文"),))
    payload = json.loads(build_payload(notice, ("zh",)))
    assert payload["messages"] == [{"lang": "zh", "title": "短标题", "body": "短正文"}]


def test_exercise_is_labelled(ua, vapid):
    """A drill's title says so once per language, in that language."""
    req = build_webpush_request(make_notice(exercise=True), recipient(ua), vapid, now=NOW)
    payload = decrypt(ua, req.body)
    assert payload["exercise"] is True and payload["title"].startswith("【演练】")
    zh, bo = payload["messages"]
    assert zh["title"].count("演练") == 1 and "EXERCISE" not in zh["title"]
    assert bo["title"].startswith("༼ལག་ལེན་ཚོད་ལྟ༽") and "演练" not in bo["title"]


def _verify_jwt(token: str, public: bytes) -> dict:
    header, claims, sig = token.split(".")
    raw = b64d(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
    key.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(b64d(header)) == {"typ": "JWT", "alg": "ES256"}
    return json.loads(b64d(claims))


def test_vapid_jwt_is_valid_es256(vapid):
    """The JWT verifies with the advertised key; aud is the push origin, exp <= 24 h ahead."""
    auth = vapid.authorization("https://push.example.net:8443/wpush/v2/abc", NOW)
    t = auth.split("t=")[1].split(",")[0]
    k = auth.split("k=")[1]
    claims = _verify_jwt(t, b64d(k))
    assert claims["aud"] == "https://push.example.net:8443"
    assert claims["sub"] == "mailto:duty@example.org"
    assert 0 < claims["exp"] - NOW.timestamp() <= 24 * 3600
    tampered = t[:-2] + ("AA" if not t.endswith("AA") else "BB")
    with pytest.raises(InvalidSignature):
        _verify_jwt(tampered, b64d(k))


def test_vapid_token_cached_per_origin_until_near_expiry(vapid):
    """One JWT per origin is reused, a new one signed for another origin and near expiry."""
    a1 = vapid.authorization("https://a.example/1", NOW)
    assert vapid.authorization("https://a.example/2", NOW + timedelta(hours=1)) == a1
    assert vapid.authorization("https://b.example/1", NOW) != a1
    assert vapid.authorization("https://a.example/1", NOW + timedelta(hours=11, minutes=30)) != a1


async def test_deliver_to_receiver(aiohttp_server, aiohttp_client, ua, vapid):
    """A push service on 127.0.0.1 gets a body it can decrypt; 201 is ok; 410 raises Gone."""
    seen = []

    async def push(request: web.Request) -> web.Response:
        seen.append((request.match_info["sub"], dict(request.headers), await request.read()))
        return web.Response(status=410 if request.match_info["sub"] == "gone" else 201)

    app = web.Application()
    app.router.add_post("/push/{sub}", push)
    server = await aiohttp_server(app)
    client = await aiohttp_client(server)
    channel = WebPushChannel(vapid, ttl_s=60, allow_insecure=True)
    ok = await channel.deliver(make_notice(), recipient(ua, str(server.make_url("/push/ok"))),
                               client.session, now=NOW)
    assert ok.ok and ok.status == 201
    _, headers, body = seen[0]
    assert headers["TTL"] == "60" and headers["Content-Encoding"] == "aes128gcm"
    assert decrypt(ua, body)["notice_id"] == "n-20241106-1"
    with pytest.raises(Gone) as err:
        await channel.deliver(make_notice(), recipient(ua, str(server.make_url("/push/gone"))),
                              client.session, now=NOW)
    assert err.value.status == 410


def test_reprs_hide_secrets(ua, vapid):
    """Endpoints, keys and tokens never show in repr()."""
    r = recipient(ua)
    req = build_webpush_request(make_notice(), r, vapid, now=NOW)
    for text in (repr(r), repr(req), repr(vapid)):
        assert "push.example.net" not in text and ua.auth_b64 not in text
        assert "vapid t=" not in text


def test_channel_headers_cached_per_notice_and_token(vapid):
    """The channel builds the header set once per (notice, VAPID token): same origin, same
    object; another origin or a refreshed token gets its own Authorization."""
    channel = WebPushChannel(vapid, ttl_s=3600, allow_insecure=True)
    notice = make_notice()
    a = channel.headers(notice, "https://push.example.net/wpush/v2/a", NOW)
    b = channel.headers(notice, "https://push.example.net/wpush/v2/b", NOW)
    other = channel.headers(notice, "https://fcm.example.com/send/x", NOW)
    assert a is b and dict(a) == push_headers(notice, "https://push.example.net/x", vapid,
                                              now=NOW, ttl_s=3600)
    assert other["Authorization"] != a["Authorization"]
    later = channel.headers(notice, "https://push.example.net/wpush/v2/c", NOW + timedelta(hours=12))
    assert later["Authorization"] != a["Authorization"] and later["TTL"] == "3600"
