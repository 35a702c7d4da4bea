"""Subscribers: validation of what a resident sends, storage with a coarsened place, and the
numpy arrays used to choose recipients by predicted intensity.

A place is rounded to 0.01 degree (about 1 km) in :func:`parse_subscriber`, before anything
stores or logs it; logs name the subscriber id only. The management token is returned once and
stored as a SHA-256 hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import math
import secrets
import sqlite3
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from cryptography.hazmat.primitives.asymmetric import ec

from quakealert.errors import InvalidRequest, NotFound

LANGUAGES = ("zh", "bo", "en")
DEFAULT_LANGUAGES = ("zh", "bo")
SUBSCRIBE_CHANNELS = ("webpush", "webhook")
DEFAULT_MIN_INTENSITY = 3
# The thresholds the subscribe page offers (api.public.INTENSITIES; a test keeps them equal).
MIN_INTENSITY_CHOICES = (3, 4, 5, 6)
PLACE_DECIMALS = 2  # 0.01 degree: about 1.1 km north-south
PLACES_FILE: Traversable = files("quakealert") / "messages" / "places.toml"
MAX_URL_CHARS = 2048
_AREA_KINDS = ("county", "district", "city")  # seats; prefectures are too coarse for an area key
_FIELDS = {"latitude", "longitude", "languages", "channel", "subscription", "url", "secret",
           "min_intensity"}


@dataclass(frozen=True, slots=True)
class NewSubscriber:
    """A validated subscription, place already coarsened."""

    latitude: float
    longitude: float
    languages: tuple[str, ...]
    channel: str
    target: str  # push endpoint or webhook URL
    p256dh: str | None = None  # base64url, 65-byte uncompressed P-256 point
    auth: str | None = None  # base64url, 16 bytes
    secret: str | None = None  # webhook HMAC secret
    min_intensity: int = DEFAULT_MIN_INTENSITY
    secret_generated: bool = False

    def __repr__(self) -> str:  # never print places, endpoints (capability URLs) or secrets
        return f"NewSubscriber(channel={self.channel!r}, languages={self.languages!r})"


@dataclass(frozen=True, slots=True)
class SubscriberPoints:
    """Every subscriber's internal id, coarsened place and felt threshold, as numpy arrays."""

    ids: np.ndarray  # int64
    lat: np.ndarray  # float64
    lon: np.ndarray  # float64
    min_intensity: np.ndarray  # int16, CSIS degree

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def coarsen(value: float) -> float:
    """Round a coordinate to about 1 km (0.01 degree)."""
    return round(float(value), PLACE_DECIMALS)


def b64url_decode(value: str) -> bytes:
    """Decode base64url with or without padding; raises ValueError."""
    if not isinstance(value, str) or not value or len(value) > 512:
        raise ValueError("not a base64url string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError("not valid base64url") from err


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _number(data: Mapping[str, Any], key: str, lo: float, hi: float) -> float:
    value = data.get(key)
    if isinstance(value, str):  # CSV cells
        try:
            value = float(value)
        except ValueError:
            raise InvalidRequest(f"{key} must be a number") from None
    if value is None:
        raise InvalidRequest(f"{key} is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{key} must be a number")
    if not lo <= value <= hi:
        raise InvalidRequest(f"{key} must be between {lo:g} and {hi:g}")
    return float(value)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: Any, what: str, *, allow_insecure: bool) -> str:
    """An https URL (or http to 127.0.0.1/localhost when ``allow_insecure``); raises InvalidRequest."""
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{what} is required")
    if len(url) > MAX_URL_CHARS or any(c.isspace() for c in url):
        raise InvalidRequest(f"{what} is not a valid URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidRequest(f"{what} is not a valid URL") from None
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password:
        raise InvalidRequest(f"{what} must be an absolute URL without credentials")
    secure = parts.scheme == "https"
    if not secure and not (parts.scheme == "http" and allow_insecure and _loopback(host)):
        raise InvalidRequest(f"{what} must use https")
    if not allow_insecure:
        # A public endpoint must not make us post to our own network: refuse what the URL
        # shows (numeric spellings of 127.0.0.1, localhost names) here, with a clear 400;
        # names are checked by the address they resolve to at send time (channels.guard).
        from quakealert.channels.guard import BlockedEndpoint, check_endpoint

        try:
            check_endpoint(url)
        except BlockedEndpoint as err:
            raise InvalidRequest(f"{what} must be a public host ({err})") from None
    return url


def _key(value: Any, name: str, size: int) -> str:
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise InvalidRequest(f"subscription.keys.{name} must be base64url") from None
    if len(raw) != size:
        raise InvalidRequest(f"subscription.keys.{name} must decode to {size} bytes")
    if name == "p256dh":
        if raw[0] != 0x04:
            raise InvalidRequest("subscription.keys.p256dh must be an uncompressed P-256 point")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError:
            raise InvalidRequest("subscription.keys.p256dh is not a point on P-256") from None
    return b64url(raw)


def parse_languages(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_LANGUAGES
    if isinstance(value, str):  # CSV: "zh;bo"
        value = [v.strip() for v in value.replace(",", ";").split(";") if v.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidRequest("languages must be a non-empty list of zh, bo, en")
    unknown = [v for v in value if v not in LANGUAGES]
    if unknown:
        raise InvalidRequest(f"unknown language {unknown[0]!r}; allowed: {', '.join(LANGUAGES)}")
    return tuple(dict.fromkeys(value))


def parse_subscriber(data: Any, *, allow_insecure: bool = False) -> NewSubscriber:
    """Validate a subscription request (API JSON or a CSV row mapped to it); InvalidRequest."""
    if not isinstance(data, dict):
        raise InvalidRequest("body must be a JSON object")
    unknown = set(data) - _FIELDS
    if unknown:
        raise InvalidRequest(f"unknown field {min(unknown)!r}")
    lat = _number(data, "latitude", -90.0, 90.0)
    lon = _number(data, "longitude", -180.0, 180.0)
    languages = parse_languages(data.get("languages"))
    mi = data.get("min_intensity", DEFAULT_MIN_INTENSITY)
    if isinstance(mi, str) and mi.strip().isdigit():
        mi = int(mi)
    if isinstance(mi, bool) or not isinstance(mi, int) or not (
            MIN_INTENSITY_CHOICES[0] <= mi <= MIN_INTENSITY_CHOICES[-1]):
        raise InvalidRequest(
            f"min_intensity must be a CSIS degree from {MIN_INTENSITY_CHOICES[0]} to "
            f"{MIN_INTENSITY_CHOICES[-1]} (the thresholds the subscribe page offers)")
    channel = data.get("channel")
    if channel not in SUBSCRIBE_CHANNELS:
        raise InvalidRequest(f"channel must be one of {', '.join(SUBSCRIBE_CHANNELS)}")
    common = {"latitude": coarsen(lat), "longitude": coarsen(lon), "languages": languages,
              "min_intensity": mi}
    if channel == "webpush":
        sub = data.get("subscription")
        if not isinstance(sub, dict):
            raise InvalidRequest("subscription (a browser PushSubscription) is required")
        endpoint = check_url(sub.get("endpoint"), "subscription.endpoint",
                             allow_insecure=allow_insecure)
        keys = sub.get("keys")
        if not isinstance(keys, dict):
            raise InvalidRequest("subscription.keys is required")
        return NewSubscriber(channel="webpush", target=endpoint,
                             p256dh=_key(keys.get("p256dh"), "p256dh", 65),
                             auth=_key(keys.get("auth"), "auth", 16), **common)
    url = check_url(data.get("url"), "url", allow_insecure=allow_insecure)
    secret = data.get("secret")
    generated = secret is None or secret == ""
    if generated:
        secret = secrets.token_urlsafe(32)
    elif not isinstance(secret, str) or not 16 <= len(secret) <= 256:
        raise InvalidRequest("secret must be a string of 16 to 256 characters")
    return NewSubscriber(channel="webhook", target=url, secret=secret,
                         secret_generated=generated, **common)


# -- places ---------------------------------------------------------------------------------


# A resident farther than this from every seat we know (e.g. in Chengdu) gets no area rather
# than the wrong one: counts by county must not file them under a Lhasa county.
AREA_MAX_KM = 100.0


@dataclass(frozen=True, slots=True)
class Places:
    """County/district seats: keys and coordinates (from messages/places.toml)."""

    keys: tuple[str, ...]
    lat: np.ndarray
    lon: np.ndarray

    def nearest(self, lat: float, lon: float, *, max_km: float = AREA_MAX_KM) -> str | None:
        """The key of the nearest seat within ``max_km`` (haversine), else None."""
        if not self.keys:
            return None
        p1, p2 = math.radians(lat), np.radians(self.lat)
        dl = np.radians(self.lon - lon)
        a = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
        i = int(np.argmin(a))
        km = 2 * 6371.0 * math.asin(min(1.0, math.sqrt(float(a[i]))))
        return self.keys[i] if km <= max_km else None


def parse_places(text: str) -> Places:
    """Seats from a places TOML: top-level tables with lat/lon (and a kind other than prefecture)."""
    data = tomllib.loads(text)
    keys, lats, lons = [], [], []
    for key, entry in data.items():
        if not isinstance(entry, dict):
            continue
        lat, lon = entry.get("lat", entry.get("latitude")), entry.get("lon", entry.get("longitude"))
        if not isinstance(lat, int | float) or not isinstance(lon, int | float):
            continue
        if "kind" in entry and entry["kind"] not in _AREA_KINDS:
            continue
        keys.append(key)
        lats.append(float(lat))
        lons.append(float(lon))
    return Places(tuple(keys), np.array(lats, dtype=np.float64), np.array(lons, dtype=np.float64))


@lru_cache(maxsize=4)
def load_places(path: Traversable = PLACES_FILE) -> Places:
    """The seats in ``path``; no seats (area stays NULL) when the file does not exist."""
    try:
        return parse_places(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Places((), np.empty(0), np.empty(0))


# -- storage --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Created:
    """What the resident gets back once: the public id, the management token, maybe a secret."""

    id: str
    token: str
    secret: str | None = None

    def __repr__(self) -> str:
        return f"Created(id={self.id!r})"


def add_subscribers(
    conn: sqlite3.Connection,
    subs: Iterable[NewSubscriber],
    *,
    now: datetime,
    places: Places | None = None,
) -> list[Created]:
    """Store many subscribers in one transaction; returns the id and token of each, in order."""
    places = places if places is not None else load_places()
    rows, out = [], []
    created_at = now.timestamp()
    for s in subs:
        public_id, token = secrets.token_urlsafe(12), secrets.token_urlsafe(32)
        rows.append((public_id, hash_token(token), s.latitude, s.longitude, ",".join(s.languages),
                     s.channel, s.target, s.p256dh, s.auth, s.secret, s.min_intensity,
                     places.nearest(s.latitude, s.longitude), created_at))
        out.append(Created(public_id, token, s.secret if s.secret_generated else None))
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT INTO subscribers (public_id, token_hash, latitude, longitude, languages,"
            " channel, target, p256dh, auth, secret, min_intensity, area, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return out


def add_subscriber(
    conn: sqlite3.Connection, sub: NewSubscriber, *, now: datetime, places: Places | None = None
) -> Created:
    """Store one subscriber; returns its public id and management token (shown once)."""
    return add_subscribers(conn, [sub], now=now, places=places)[0]


def internal_id(conn: sqlite3.Connection, public_id: str) -> int:
    row = conn.execute("SELECT id FROM subscribers WHERE public_id = ?", (public_id,)).fetchone()
    if row is None:
        raise NotFound("no such subscription")
    return int(row["id"])


def get_subscriber(conn: sqlite3.Connection, subscriber_id: int | str) -> dict[str, Any]:
    """One subscriber row (by internal int id or public id) as a dict; raises NotFound."""
    col = "id" if isinstance(subscriber_id, int) else "public_id"
    row = conn.execute(f"SELECT * FROM subscribers WHERE {col} = ?", (subscriber_id,)).fetchone()
    if row is None:
        raise NotFound("no such subscription")
    return dict(row)


def delete_subscriber(
    conn: sqlite3.Connection, subscriber_id: int | str, token: str | None = None
) -> bool:
    """Delete a subscriber (by internal id, or by public id checked against its token).

    Returns False when there is no such subscriber or the token does not match, so callers can
    answer both the same way.
    """
    if isinstance(subscriber_id, int):
        cur = conn.execute("DELETE FROM subscribers WHERE id = ?", (subscriber_id,))
        return cur.rowcount > 0
    row = conn.execute("SELECT id, token_hash FROM subscribers WHERE public_id = ?",
                       (subscriber_id,)).fetchone()
    # Compare even when absent so timing does not tell whether the id exists.
    stored = row["token_hash"] if row is not None else "0" * 64
    ok = hmac.compare_digest(stored, hash_token(token or ""))
    if row is None or not ok:
        return False
    conn.execute("DELETE FROM subscribers WHERE id = ?", (row["id"],))
    return True


def subscriber_points(conn: sqlite3.Connection, channel: str | None = None) -> SubscriberPoints:
    """All subscribers (or one channel's) as arrays, for vectorised recipient selection."""
    sql = "SELECT id, latitude, longitude, min_intensity FROM subscribers"
    args: tuple[Any, ...] = ()
    if channel is not None:
        sql += " WHERE channel = ?"
        args = (channel,)
    rows = conn.execute(sql, args).fetchall()
    arr = np.array([tuple(r) for r in rows], dtype=np.float64).reshape(-1, 4)
    return SubscriberPoints(ids=arr[:, 0].astype(np.int64), lat=arr[:, 1].copy(),
                            lon=arr[:, 2].copy(), min_intensity=arr[:, 3].astype(np.int16))


def count_by_area(conn: sqlite3.Connection) -> dict[str, int]:
    """Subscriber counts per area key ("unknown" when no seat was found); never places."""
    return {
        (row[0] or "unknown"): int(row[1])
        for row in conn.execute(
            "SELECT area, count(*) FROM subscribers GROUP BY area ORDER BY area")
    }


def count_by_channel(conn: sqlite3.Connection) -> dict[str, int]:
    """Subscriber counts per channel."""
    return {row[0]: int(row[1]) for row in conn.execute(
        "SELECT channel, count(*) FROM subscribers GROUP BY channel ORDER BY channel")}


def has_target(conn: sqlite3.Connection, channel: str, target: str) -> bool:
    """Whether a subscriber on ``channel`` has this target."""
    return conn.execute("SELECT 1 FROM subscribers WHERE channel = ? AND target = ?",
                        (channel, target)).fetchone() is not None


def recipient_rows(conn: sqlite3.Connection
                   ) -> list[tuple[int, float, float, int, str | None, str]]:
    """Every subscriber as (id, latitude, longitude, min_intensity, area, languages), by id."""
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT id, latitude, longitude, min_intensity, area, languages FROM subscribers"
        " ORDER BY id").fetchall()]


def recipients_key(conn: sqlite3.Connection) -> tuple[int, int]:
    """(count, largest id) of the subscribers: changes whenever one is added or removed."""
    row = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM subscribers").fetchone()
    return (int(row[0]), int(row[1]))
