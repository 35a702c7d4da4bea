"""Helpers for channel tests: a notice in three languages and browser-like push keys."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from quakealert.model import Message, Notice
from quakealert.store.subscribers import b64url

NOW = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)


def make_notice(**kw) -> Notice:
    fields = {
        "id": "n-20241106-1", "sequence_id": "seq-maizhokunggar-2024", "event_id": "ev-1",
        "kind": "felt_guidance", "msg_type": "Alert",
        "messages": (
            Message("zh", "墨竹工卡县4.5级地震", "2024年11月7日04时19分 西藏拉萨市墨竹工卡县发生4.5级地震。请保持冷静。"),
            Message("bo", "ས་ཡོམ།", "ལྷ་ས་གྲོང་ཁྱེར་ནང་ས་ཡོམ་བྱུང་།"),
            Message("en", "M4.5 earthquake, Maizhokunggar", "Stay calm and move to open ground."),
        ),
        "created_at": NOW, "urgency": "high", "exercise": False, "url": "https://example.org/n/1",
    }
    fields.update(kw)
    return Notice(**fields)


class UA:
    """A browser's push subscription keys."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.public = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        self.auth = b"sixteen-byte-key"

    @property
    def p256dh(self) -> str:
        return b64url(self.public)

    @property
    def auth_b64(self) -> str:
        return b64url(self.auth)
