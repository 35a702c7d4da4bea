"""VAPID (RFC 8292): the application server's P-256 key and the ES256 JWT it signs per push
service origin.

Keys come from ``[webpush] vapid_private_key_file`` (PEM, or a raw base64url private scalar as
web-push tools print it) and ``vapid_subject``; without a file a key is generated once into
``var_dir/vapid_private.pem`` (mode 0600).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from quakealert.config import Settings
from quakealert.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_SUBJECT = "mailto:quakealert@localhost"
KEY_FILE_NAME = "vapid_private.pem"
TOKEN_TTL_S = 12 * 3600  # RFC 8292 §2: exp no more than 24 h ahead
REFRESH_BEFORE_S = 3600  # re-sign this long before a cached token expires


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def origin_of(endpoint: str) -> str:
    """The JWT audience: scheme://host[:port] of the push endpoint."""
    # Fast path for the usual "https://host[:port]/path" (called once per push message).
    scheme_end = endpoint.find("://")
    if scheme_end > 0:
        slash = endpoint.find("/", scheme_end + 3)
        origin = endpoint if slash < 0 else endpoint[:slash]
        if "@" not in origin and "?" not in origin and "#" not in origin:
            return origin.lower()
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(slots=True)
class Vapid:
    """A VAPID key pair and subject; caches one signed JWT per push-service origin."""

    private_key: ec.EllipticCurvePrivateKey
    subject: str = DEFAULT_SUBJECT
    token_ttl_s: float = TOKEN_TTL_S
    _cache: dict[str, tuple[float, str]] = field(default_factory=dict, repr=False)
    public_key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.subject.startswith("mailto:") or self.subject.startswith("https://")):
            raise ConfigError("[webpush] vapid_subject must be a mailto: or https: URI")
        self.public_key = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)

    def __repr__(self) -> str:
        return f"Vapid(subject={self.subject!r}, key={self.application_server_key[:8]}...)"

    @property
    def application_server_key(self) -> str:
        """The public key as browsers want it for ``pushManager.subscribe`` (base64url)."""
        return _b64(self.public_key)

    def sign(self, audience: str, expires_at: float) -> str:
        """An ES256 JWT for ``audience`` expiring at ``expires_at`` (epoch seconds)."""
        header = _b64(json.dumps({"typ": "JWT", "alg": "ES256"}, separators=(",", ":")).encode())
        claims = _b64(json.dumps({"aud": audience, "exp": int(expires_at), "sub": self.subject},
                                 separators=(",", ":")).encode())
        signing_input = f"{header}.{claims}".encode("ascii")
        r, s = decode_dss_signature(self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{header}.{claims}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def authorization(self, endpoint: str, now: datetime) -> str:
        """The ``Authorization: vapid t=..., k=...`` value for an endpoint (RFC 8292 §3)."""
        audience = origin_of(endpoint)
        at = now.timestamp()
        cached = self._cache.get(audience)
        if cached is None or cached[0] - REFRESH_BEFORE_S <= at:
            expires = at + self.token_ttl_s
            header = f"vapid t={self.sign(audience, expires)}, k={self.application_server_key}"
            cached = (expires, header)
            self._cache[audience] = cached
        return cached[1]


def load_private_key(data: bytes) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from PEM, or from a raw base64url scalar (32 bytes)."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        key = serialization.load_pem_private_key(text, password=None)
    else:
        raw = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
        if len(raw) != 32:
            raise ConfigError("VAPID private key must be PEM or a 32-byte base64url scalar")
        key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError("VAPID private key must be an EC P-256 key")
    return key


def generate_key_file(path: Path) -> ec.EllipticCurvePrivateKey:
    """Write a new P-256 key as PKCS#8 PEM, readable by the owner only (0600)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # var/: owner only
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def load_vapid(settings: Settings) -> Vapid:
    """The VAPID key from ``[webpush]`` config, else var_dir/vapid_private.pem (made once)."""
    section = settings.section("webpush")
    subject = str(section.get("vapid_subject", DEFAULT_SUBJECT))
    configured = section.get("vapid_private_key_file")
    if configured:
        try:
            key = load_private_key(Path(configured).read_bytes())
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read VAPID key {configured}: {err}") from err
        return Vapid(key, subject)
    path = Path(settings.var_dir) / KEY_FILE_NAME
    try:
        key = load_private_key(path.read_bytes())
    except FileNotFoundError:
        try:
            key = generate_key_file(path)
            log.info("generated a new VAPID key in %s", path)
        except FileExistsError:  # another process made it between our read and our create
            key = load_private_key(path.read_bytes())
    except ValueError as err:
        raise ConfigError(f"cannot read VAPID key {path}: {err}") from err
    return Vapid(key, subject)
