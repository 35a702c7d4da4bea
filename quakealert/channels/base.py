"""What every delivery channel shares: the Channel protocol, a recipient, a delivery result."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from aiohttp import ClientSession

from quakealert.errors import SubscriptionGone
from quakealert.model import Notice


@dataclass(frozen=True, slots=True)
class Recipient:
    """One subscriber on one channel, as its channel needs it (no place: channels never need it)."""

    subscriber_id: int
    channel: str
    target: str  # push endpoint, webhook URL, "stdout"
    languages: tuple[str, ...] = ("zh", "bo")
    p256dh: str | None = None
    auth: str | None = None
    secret: str | None = None
    delivery_id: int | None = None  # the outbox row: lets receivers drop duplicates

    def __repr__(self) -> str:  # endpoints are capability URLs; keys and secrets are private
        return f"Recipient(subscriber_id={self.subscriber_id}, channel={self.channel!r})"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What one attempt to deliver one notice to one target came to."""

    notice_id: str
    channel: str
    target: str
    ok: bool
    status: int | None = None  # HTTP status, when there was one
    retry_after_s: float | None = None  # from a Retry-After header
    error: str | None = None
    gone: bool = False  # the subscription no longer exists (Web Push 404/410)

    def __repr__(self) -> str:
        return (f"DeliveryResult(notice_id={self.notice_id!r}, channel={self.channel!r}, "
                f"ok={self.ok}, status={self.status}, error={self.error!r}, gone={self.gone})")


class Gone(SubscriptionGone):
    """A receiver said the subscription no longer exists (404/410)."""

    def __init__(self, channel: str, status: int):
        super().__init__(f"{channel}: subscription gone (HTTP {status})")
        self.channel = channel
        self.status = status


class Channel(Protocol):
    """A way to reach residents. ``deliver`` raises SubscriptionGone for 404/410; transport
    errors (timeouts, refused connections) propagate and the outbox retries them."""

    name: str

    async def deliver(
        self, notice: Notice, recipient: Recipient, session: ClientSession, *, now: datetime
    ) -> DeliveryResult: ...


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value))
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (at - now).total_seconds())


def result_from_status(
    notice: Notice, recipient: Recipient, status: int, retry_after: str | None, now: datetime
) -> DeliveryResult:
    """2xx ok; 429, 408 and 5xx retryable (with Retry-After); other statuses final failures."""
    ok = 200 <= status < 300
    error = None if ok else f"HTTP {status}"
    return DeliveryResult(
        notice_id=notice.id, channel=recipient.channel, target=recipient.target, ok=ok,
        status=status,
        retry_after_s=parse_retry_after(retry_after, now) if not ok else None, error=error,
    )


def retryable(status: int | None) -> bool:
    """Worth trying again later: no status (transport error), 408, 425, 429, 5xx."""
    return status is None or status in (408, 425, 429) or status >= 500


