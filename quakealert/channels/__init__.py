"""Delivery channels: pure builders plus thin async sends. ``CHANNELS`` is the registry."""

from __future__ import annotations

from typing import Any

from quakealert.channels.base import Channel, DeliveryResult, Recipient
from quakealert.channels.console import ConsoleChannel
from quakealert.channels.webhook import WebhookChannel
from quakealert.channels.webpush import WebPushChannel
from quakealert.config import Settings

CHANNELS: dict[str, type[Any]] = {
    "webpush": WebPushChannel,
    "webhook": WebhookChannel,
    "console": ConsoleChannel,
}

__all__ = ["CHANNELS", "Channel", "DeliveryResult", "Recipient", "make_channels"]


def make_channels(settings: Settings, *, vapid: Any = None) -> dict[str, Channel]:
    """One instance of each channel, configured from ``[webpush]`` / ``[webhook]``.

    The VAPID key is loaded (or generated into var_dir) only when ``vapid`` is not given.
    """
    from quakealert.channels.vapid import load_vapid

    push = settings.section("webpush")
    hook = settings.section("webhook")
    # One switch for both HTTP channels, as for subscribing (docs/security.md).
    insecure = bool(push.get("allow_insecure_endpoints", False))
    return {
        "webpush": WebPushChannel(vapid if vapid is not None else load_vapid(settings),
                                  ttl_s=int(push.get("ttl_s", 6 * 3600)),
                                  timeout_s=float(push.get("timeout_s", 10.0)),
                                  crypto_workers=int(push.get("crypto_workers", 0)),
                                  allow_insecure=insecure),
        "webhook": WebhookChannel(timeout_s=float(hook.get("timeout_s", 10.0)),
                                  allow_insecure=insecure),
        "console": ConsoleChannel(),
    }
