"""Web Push: RFC 8291 message encryption (aes128gcm, RFC 8188), VAPID (RFC 8292), RFC 8030
headers. ``encrypt_payload`` and ``build_webpush_request`` are pure; ``WebPushChannel.deliver``
only sends the bytes (the pywebpush ``_prepare_send_data`` / send split).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from multiprocessing import get_context

import aiohttp
from aiohttp import ClientSession
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from multidict import CIMultiDict

from quakealert.channels.base import (
    DeliveryResult,
    Gone,
    Recipient,
    result_from_status,
)
from quakealert.channels.guard import post_capped
from quakealert.channels.vapid import Vapid
from quakealert.core.render import push_texts
from quakealert.model import Message, Notice
from quakealert.store.subscribers import b64url, b64url_decode

RECORD_SIZE = 4096  # RFC 8291 §4: push services must accept a 4096-octet payload
_HEADER_LEN = 16 + 4 + 1 + 65  # salt, rs, idlen, keyid (the sender's public key)
_TAG_LEN = 16
MAX_PLAINTEXT = RECORD_SIZE - _HEADER_LEN - _TAG_LEN - 1  # 1 = padding delimiter: 3993 octets
DEFAULT_TTL_S = 6 * 3600
URGENCIES = ("very-low", "low", "normal", "high")
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_KEY_INFO = b"WebPush: info\x00"
_CEK_INFO = b"Content-Encoding: aes128gcm\x00\x01"
_NONCE_INFO = b"Content-Encoding: nonce\x00\x01"


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, hashlib.sha256)


def encrypt_payload(
    plaintext: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    as_private_key: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
) -> bytes:
    """Encrypt one push message for one user agent: a single aes128gcm record (RFC 8291 §3-4).

    ``as_private_key`` and ``salt`` are fresh per message unless given (tests pass the RFC's).
    """
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"plaintext of {len(plaintext)} octets exceeds {MAX_PLAINTEXT}")
    if len(auth_secret) != 16:
        raise ValueError("auth secret must be 16 octets")
    as_private_key = as_private_key or ec.generate_private_key(ec.SECP256R1())
    salt = salt if salt is not None else os.urandom(16)
    as_public = as_private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    ecdh_secret = as_private_key.exchange(ec.ECDH(), ua_key)
    # HKDF-SHA256 with one output block each, written out as HMACs (RFC 5869; RFC 8291 §3.4).
    prk_key = _hmac(auth_secret, ecdh_secret)
    ikm = _hmac(prk_key, _KEY_INFO + ua_public + as_public + b"\x01")
    prk = _hmac(salt, ikm)
    cek = _hmac(prk, _CEK_INFO)[:16]
    nonce = _hmac(prk, _NONCE_INFO)[:12]
    ciphertext = AESGCM(cek).encrypt(nonce, plaintext + b"\x02", None)
    header = salt + RECORD_SIZE.to_bytes(4, "big") + bytes([len(as_public)]) + as_public
    return header + ciphertext


@dataclass(frozen=True, slots=True)
class PushRequest:
    """One HTTP request to a push service, ready to send."""

    url: str
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:  # the endpoint is a capability URL; the header holds a token
        return f"PushRequest(body={len(self.body)} octets)"


def topic_for(sequence_id: str) -> str:
    """An RFC 8030 §5.4 Topic (<= 32 URL-safe base64 chars) naming the sequence, so a newer
    notice replaces an undelivered older one; long or unusual ids are hashed."""
    if _TOPIC.match(sequence_id):
        return sequence_id
    return b64url(hashlib.sha256(sequence_id.encode("utf-8")).digest())[:32]


def notice_url(url: str | None, lang: str) -> str | None:
    """The full notice's address with the resident's first language shown first (/n/{id}?lang=)."""
    if not url:
        return url
    return f"{url}{'&' if '?' in url else '?'}lang={lang}"


def _ordered_messages(notice: Notice, languages: tuple[str, ...]) -> list[Message]:
    wanted = [m for lang in languages if (m := notice.message(lang)) is not None]
    return wanted or list(notice.messages[:1])


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def build_payload(notice: Notice, languages: tuple[str, ...]) -> bytes:
    """The JSON a service worker shows: every chosen language, in the resident's order, each a
    phone-sized title and body (core.render.PUSH_LIMITS); the full notice is at ``url``.

    ``messages`` lists them all; ``title``/``body``/``lang`` repeat the first for older workers.
    Pushes are short by construction (at most 3 x 480 characters, < 3993 octets even at 3 octets
    a character), so every chosen language fits one 4096-octet record (RFC 8291 §4).
    """
    msgs = _ordered_messages(notice, languages)
    texts = [(m.lang, *push_texts(m, exercise=notice.exercise)) for m in msgs] or [("en", "", "")]
    topic = topic_for(notice.sequence_id)
    payload: dict[str, object] = {
        "title": texts[0][1], "body": texts[0][2], "lang": texts[0][0],
        "messages": [{"lang": lang, "title": t, "body": b} for lang, t, b in texts],
        "notice_id": notice.id, "sequence_id": notice.sequence_id, "tag": topic,
        "kind": notice.kind, "msg_type": notice.msg_type, "exercise": notice.exercise,
        "url": notice_url(notice.url, texts[0][0]), "created_at": notice.created_at.isoformat().replace("+00:00", "Z"),
    }
    return _dumps(payload)  # 3 languages x (80 + 400) characters stay far below MAX_PLAINTEXT


def build_webpush_request(
    notice: Notice,
    sub: Recipient,
    vapid: Vapid,
    *,
    now: datetime,
    ttl_s: int = DEFAULT_TTL_S,
    as_private_key: ec.EllipticCurvePrivateKey | None = None,
    salt: bytes | None = None,
    payload: bytes | None = None,
) -> PushRequest:
    """Encrypt the notice for one subscription and put the RFC 8030/8292 headers around it.

    ``payload`` is ``build_payload(notice, sub.languages)`` when the caller already has it.
    """
    if sub.p256dh is None or sub.auth is None:
        raise ValueError("a Web Push recipient needs p256dh and auth keys")
    if payload is None:
        payload = build_payload(notice, sub.languages)
    body = encrypt_payload(payload, b64url_decode(sub.p256dh), b64url_decode(sub.auth),
                           as_private_key=as_private_key, salt=salt)
    headers = push_headers(notice, sub.target, vapid, now=now, ttl_s=ttl_s)
    return PushRequest(url=sub.target, headers=headers, body=body)


def push_headers(
    notice: Notice, endpoint: str, vapid: Vapid, *, now: datetime, ttl_s: int
) -> dict[str, str]:
    """TTL, Urgency, Topic (RFC 8030 §5), aes128gcm, and the VAPID Authorization (RFC 8292)."""
    return {
        "TTL": str(max(0, int(ttl_s))),
        "Urgency": notice.urgency if notice.urgency in URGENCIES else "normal",
        "Topic": topic_for(notice.sequence_id),
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
        "Authorization": vapid.authorization(endpoint, now),
    }


def encrypt_batch(items: list[tuple[bytes, str, str]]) -> list[bytes | ValueError]:
    """``encrypt_payload`` for many (plaintext, p256dh, auth) at once: the unit of work sent to
    a process pool, so the ECDH of one fan-out uses every core."""
    out: list[bytes | ValueError] = []
    for plaintext, p256dh, auth in items:
        try:
            out.append(encrypt_payload(plaintext, b64url_decode(p256dh), b64url_decode(auth)))
        except ValueError as err:
            out.append(err)
    return out


class _Batcher:
    """Collects encryptions requested in one loop iteration and runs them in the pool in chunks."""

    def __init__(self, executor: Executor, chunk: int = 64):
        self.executor = executor
        self.chunk = chunk
        self._queue: list[tuple[bytes, str, str, asyncio.Future[bytes]]] = []

    async def encrypt(self, plaintext: bytes, p256dh: str, auth: str) -> bytes:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((plaintext, p256dh, auth, fut))
        return await fut

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        loop = asyncio.get_running_loop()
        for i in range(0, len(queue), self.chunk):
            part = queue[i : i + self.chunk]
            job = loop.run_in_executor(self.executor, encrypt_batch, [q[:3] for q in part])
            job.add_done_callback(lambda j, part=part: self._resolve(j, part))

    @staticmethod
    def _resolve(job: asyncio.Future[list[bytes | ValueError]],
                 part: list[tuple[bytes, str, str, asyncio.Future[bytes]]]) -> None:
        if job.cancelled() or job.exception() is not None:
            err = job.exception() if not job.cancelled() else asyncio.CancelledError()
            for *_, fut in part:
                if not fut.done():
                    fut.set_exception(err or RuntimeError("encryption failed"))
            return
        for (*_, fut), res in zip(part, job.result()):
            if fut.done():
                continue
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)


class WebPushChannel:
    """Sends encrypted notices to browser push services over the shared ClientSession."""

    name = "webpush"

    def __init__(self, vapid: Vapid, *, ttl_s: int = DEFAULT_TTL_S, timeout_s: float = 10.0,
                 crypto_workers: int = 0, allow_insecure: bool = False):
        self.vapid = vapid
        self.allow_insecure = allow_insecure  # [webpush] allow_insecure_endpoints: tests, demo
        self.ttl_s = ttl_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        # ECDH per recipient dominates a large fan-out; with crypto_workers > 0 it runs in a
        # process pool (cryptography holds the GIL, so threads would not help).
        self._pool: ProcessPoolExecutor | None = None
        self._batcher: _Batcher | None = None
        if crypto_workers > 0:
            self._pool = ProcessPoolExecutor(crypto_workers, mp_context=get_context("spawn"))
            self._batcher = _Batcher(self._pool)
        # One notice fans out to many subscribers with few language choices: build each
        # plaintext once (keyed by notice id and languages; a notice never changes).
        self._payloads: dict[tuple[str, tuple[str, ...]], bytes] = {}
        self._headers: dict[tuple[str, str, str, str], CIMultiDict[str]] = {}

    def __repr__(self) -> str:
        return f"WebPushChannel(ttl_s={self.ttl_s})"

    def close(self) -> None:
        """Stop the crypto process pool, if any."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = self._batcher = None

    def payload(self, notice: Notice, languages: tuple[str, ...]) -> bytes:
        key = (notice.id, languages)
        data = self._payloads.get(key)
        if data is None:
            if len(self._payloads) >= 256:
                self._payloads.clear()
            data = self._payloads[key] = build_payload(notice, languages)
        return data

    def headers(self, notice: Notice, endpoint: str, now: datetime) -> CIMultiDict[str]:
        """``push_headers``, built once per (notice, VAPID token) rather than per recipient: the
        token is cached per push-service origin, so the whole header set is too."""
        auth = self.vapid.authorization(endpoint, now)
        key = (notice.id, notice.urgency, notice.sequence_id, auth)
        headers = self._headers.get(key)
        if headers is None:
            if len(self._headers) >= 256:
                self._headers.clear()
            # A CIMultiDict is what aiohttp wants: it copies it without converting it first.
            headers = self._headers[key] = CIMultiDict(
                push_headers(notice, endpoint, self.vapid, now=now, ttl_s=self.ttl_s))
        return headers

    async def deliver(
        self, notice: Notice, recipient: Recipient, session: ClientSession, *, now: datetime
    ) -> DeliveryResult:
        """Encrypt and POST; 404/410 raise Gone, other statuses become the result."""
        payload = self.payload(notice, recipient.languages)
        if self._batcher is None:
            if recipient.p256dh is None or recipient.auth is None:
                raise ValueError("a Web Push recipient needs p256dh and auth keys")
            body = encrypt_payload(payload, b64url_decode(recipient.p256dh),
                                   b64url_decode(recipient.auth))
            req = PushRequest(url=recipient.target, body=body,
                              headers=self.headers(notice, recipient.target, now))
        else:
            if recipient.p256dh is None or recipient.auth is None:
                raise ValueError("a Web Push recipient needs p256dh and auth keys")
            body = await self._batcher.encrypt(payload, recipient.p256dh, recipient.auth)
            req = PushRequest(url=recipient.target, body=body,
                              headers=self.headers(notice, recipient.target, now))
        return await send(session, req, notice, recipient, now=now, timeout=self.timeout,
                          allow_insecure=self.allow_insecure)


async def send(
    session: ClientSession,
    req: PushRequest,
    notice: Notice,
    recipient: Recipient,
    *,
    now: datetime,
    timeout: aiohttp.ClientTimeout,
    allow_insecure: bool = False,
) -> DeliveryResult:
    """POST a built request; the thin I/O half of the channel (public addresses only, no
    redirects, at most 64 KB of the answer read: channels.guard)."""
    status, retry_after = await post_capped(session, req.url, req.body, req.headers,
                                            timeout=timeout, allow_insecure=allow_insecure)
    if status in (404, 410):
        raise Gone("webpush", status)
    return result_from_status(notice, recipient, status, retry_after, now)
