"""Signed webhooks for the office's SMS / WeChat / loudspeaker gateways.

The body is JSON; ``X-Quakealert-Signature: sha256=<hex>`` is HMAC-SHA256 over
``"<X-Quakealert-Timestamp>.<body>"`` with the subscriber's secret (docs/webhook.md has the
verification recipe). ``build_webhook_payload`` is pure; ``deliver`` only sends it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from aiohttp import ClientSession

from quakealert.channels.base import DeliveryResult, Gone, Recipient, result_from_status
from quakealert.channels.guard import post_capped
from quakealert.channels.webpush import notice_url
from quakealert.core.render import exercise_title, push_texts
from quakealert.model import Message, Notice

SIGNATURE_HEADER = "X-Quakealert-Signature"
TIMESTAMP_HEADER = "X-Quakealert-Timestamp"
DELIVERY_HEADER = "X-Quakealert-Delivery"
USER_AGENT = "quakealert-webhook/1"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One signed POST, ready to send."""

    url: str
    headers: dict[str, str]
    body: bytes

    def __repr__(self) -> str:  # the URL may carry a gateway token
        return f"WebhookRequest(body={len(self.body)} octets)"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, "timestamp.body")>``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sms_entry(m: Message, exercise: bool, url: str | None) -> dict[str, str]:
    """One language's SMS: the phone-sized title and body, and the text with the link to the
    full notice (core.render.PUSH_LIMITS)."""
    title, body = push_texts(m, exercise=exercise)
    return {"lang": m.lang, "title": title, "body": body,
            "text": "\n".join([title, body] + ([url] if url else []))}


def build_webhook_payload(notice: Notice, sub: Recipient, *, now: datetime) -> WebhookRequest:
    """The JSON body and signature headers for one gateway (messages in its languages)."""
    if not sub.secret:
        raise ValueError("a webhook recipient needs a secret")
    msgs = [m for lang in sub.languages if (m := notice.message(lang)) is not None]
    msgs = msgs or list(notice.messages)
    payload = {
        "notice_id": notice.id,
        "sequence_id": notice.sequence_id,
        "event_id": notice.event_id,
        "kind": notice.kind,
        "msg_type": notice.msg_type,
        "urgency": notice.urgency,
        "exercise": notice.exercise,
        "references": list(notice.references),
        "created_at": notice.created_at.isoformat().replace("+00:00", "Z"),
        "url": notice.url,
        "delivery_id": sub.delivery_id,
        "messages": {m.lang: {"title": exercise_title(m.title, m.lang) if notice.exercise
                              else m.title, "body": m.body} for m in msgs},
        # per chosen language, in the resident's order: the phone-sized text for SMS gateways
        "sms": [sms_entry(m, notice.exercise, notice_url(notice.url, msgs[0].lang))
                for m in msgs],
    }
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(sub.secret, timestamp, body),
    }
    if sub.delivery_id is not None:
        headers[DELIVERY_HEADER] = str(sub.delivery_id)
    return WebhookRequest(url=sub.target, headers=headers, body=body)


class WebhookChannel:
    """POSTs signed notices to gateways; 410 means the gateway dropped the subscription."""

    name = "webhook"

    def __init__(self, *, timeout_s: float = 10.0, allow_insecure: bool = False):
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.allow_insecure = allow_insecure  # [webpush] allow_insecure_endpoints: tests, demo

    def __repr__(self) -> str:
        return "WebhookChannel()"

    async def deliver(
        self, notice: Notice, recipient: Recipient, session: ClientSession, *, now: datetime
    ) -> DeliveryResult:
        req = build_webhook_payload(notice, recipient, now=now)
        status, retry_after = await post_capped(
            session, req.url, req.body, req.headers, timeout=self.timeout,
            allow_insecure=self.allow_insecure)
        # Only 410 removes a gateway: a 404 is more often a misconfigured path than an
        # unsubscribe, and the office would rather see it failing than lose the subscriber.
        if status == 410:
            raise Gone("webhook", status)
        return result_from_status(notice, recipient, status, retry_after, now)
