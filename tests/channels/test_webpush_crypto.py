"""RFC 8291 aes128gcm encryption: the RFC's own vector, and an independent decryptor (http_ece)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from quakealert.channels.webpush import MAX_PLAINTEXT, RECORD_SIZE, encrypt_payload

VECTOR = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "webpush" / "rfc8291-webpush-test-vector.json")
    .read_text(encoding="utf-8"))


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def private_key(scalar: bytes) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())


def test_rfc8291_vector_byte_for_byte():
    """With the RFC's sender key and salt, the body equals RFC 8291 §5 exactly."""
    inp = VECTOR["inputs"]
    body = encrypt_payload(
        b64d(inp["plaintext"]), b64d(inp["ua_public"]), b64d(inp["auth_secret"]),
        as_private_key=private_key(b64d(inp["as_private"])), salt=b64d(inp["salt"]))
    assert body == b64d(VECTOR["output"]["body"])
    assert len(body) == 144
    assert body[:86] == b64d(VECTOR["output"]["header"])


def ua_keys():
    ua = ec.generate_private_key(ec.SECP256R1())
    pub = ua.public_key().public_bytes(serialization.Encoding.X962,
                                       serialization.PublicFormat.UncompressedPoint)
    return ua, pub


def test_http_ece_decrypts_our_payload():
    """An independent RFC 8291 implementation decrypts what we send, with the UA private key."""
    ua, pub = ua_keys()
    auth = b"0123456789abcdef"
    text = "拉萨 M4.5 ས་ཡོམ། earthquake".encode()
    body = encrypt_payload(text, pub, auth)
    assert http_ece.decrypt(body, private_key=ua, dh=None, auth_secret=auth,
                            version="aes128gcm") == text


def test_fresh_key_and_salt_per_message():
    """Two encryptions of the same text differ (new ephemeral key and salt each time)."""
    _, pub = ua_keys()
    a = encrypt_payload(b"x", pub, b"A" * 16)
    b = encrypt_payload(b"x", pub, b"A" * 16)
    assert a[:16] != b[:16] and a[21:86] != b[21:86]


def test_largest_plaintext_fills_one_record():
    """The largest allowed plaintext makes a body of exactly 4096 octets; one more is refused."""
    ua, pub = ua_keys()
    body = encrypt_payload(b"a" * MAX_PLAINTEXT, pub, b"A" * 16)
    assert len(body) == RECORD_SIZE
    assert http_ece.decrypt(body, private_key=ua, dh=None, auth_secret=b"A" * 16,
                            version="aes128gcm") == b"a" * MAX_PLAINTEXT
    with pytest.raises(ValueError):
        encrypt_payload(b"a" * (MAX_PLAINTEXT + 1), pub, b"A" * 16)


def test_rejects_point_not_on_curve():
    """A UA key that is not a P-256 point is refused before any network I/O."""
    bad = b"\x04" + b"\x01" * 64
    with pytest.raises(ValueError):
        encrypt_payload(b"x", bad, b"A" * 16)
