"""Query-parameter parsing for views: clear 400s for bad values, never a 500."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from quakealert.errors import InvalidRequest

MAX_LIMIT = 1000


def parse_time(name: str, value: str) -> datetime:
    """ISO 8601; naive times are UTC (FDSN convention); a bare date is midnight UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        at = datetime.fromisoformat(text)
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except ValueError:
        raise InvalidRequest(f"{name}: {value!r} is not an ISO 8601 time") from None
    except OverflowError:  # 0001-01-01T00:00:00+14:00 is before the first UTC instant
        raise InvalidRequest(f"{name}: {value!r} is out of range") from None


def get_time(request: web.Request, *names: str) -> datetime | None:
    for name in names:
        if name in request.query:
            return parse_time(name, request.query[name])
    return None


def get_float(
    request: web.Request, *names: str, lo: float = -math.inf, hi: float = math.inf
) -> float | None:
    for name in names:
        if name in request.query:
            raw = request.query[name]
            try:
                value = float(raw)
            except ValueError:
                raise InvalidRequest(f"{name}: {raw!r} is not a number") from None
            if not math.isfinite(value) or not lo <= value <= hi:
                raise InvalidRequest(f"{name}: {raw} is outside [{lo:g}, {hi:g}]")
            return value
    return None


def get_int(request: web.Request, name: str, default: int, lo: int = 1, hi: int = MAX_LIMIT) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if len(raw) > 12:
        raise InvalidRequest(f"{name}: {raw[:20]!r}... is outside [{lo}, {hi}]")
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: {raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise InvalidRequest(f"{name}: {value} is outside [{lo}, {hi}]")
    return value


def get_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise InvalidRequest(f"{name}: {raw!r} is not true or false")


def get_choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw not in choices:
        raise InvalidRequest(f"{name}: {raw!r} is not one of {', '.join(choices)}")
    return raw


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


MAX_CURSOR_CHARS = 512


def _cursor_value(value: Any) -> bool:
    """Cursors hold finite numbers within float range and short strings (an epoch and an id)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < 2**53
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and len(value) <= 256


def decode_cursor(raw: str) -> list[Any]:
    """The values of a cursor this service issued; InvalidRequest for anything else (a number
    such as 10**400 would overflow float(), deep nesting would exhaust the JSON parser)."""
    bad = InvalidRequest("cursor: not a cursor this service issued")
    if len(raw) > MAX_CURSOR_CHARS:
        raise bad
    try:
        padded = raw + "=" * (-len(raw) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad from None
    if not isinstance(values, list) or not all(_cursor_value(v) for v in values):
        raise bad
    return values


def json_response(request: web.Request, body: Any, *, last_modified: datetime | None = None
                  ) -> web.Response:
    """JSON with a strong ETag (and Last-Modified); answers 304 to a matching If-None-Match."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    etag = '"' + hashlib.blake2s(text.encode(), digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if last_modified is not None:
        headers["Last-Modified"] = last_modified.strftime("%a, %d %b %Y %H:%M:%S GMT")
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return web.Response(text=text, content_type="application/json", headers=headers)
