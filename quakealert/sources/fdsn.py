"""fdsnws-event 1.x nodes (USGS, EMSC, GFZ/GEOFON, INGV, GeoNet ...): ``format=text`` for polling,
QuakeML (through obspy) for detail and replay files.

Polling asks ``updatedafter = since - overlap_s`` so revisions of already-seen events come back
(DESIGN.md); a node that rejects ``updatedafter`` (SeisComP answers 503 "not supported") is
configured with ``params = { updatedafter = false }`` and is asked ``starttime`` instead.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import ConfigError
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.model import ParseResult
from quakealert.sources.base import (
    TEXT_TYPES,
    http_get,
)

# params keys that configure quakealert rather than the query sent to the node
OPTION_KEYS = frozenset(
    {"updatedafter", "lookback_s", "status", "ws_url", "ws_heartbeat_s", "ws_backoff_s",
     "ws_backoff_max_s", "source_as", "label"}
)
DEFAULT_LOOKBACK_S = 86400.0  # first poll without `since`: the last day, never the whole catalogue
# UTC without a zone: accepted by every node we know (GeoNet takes 19 characters)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


def build_query_url(
    base_url: str,
    since: datetime | None,
    overlap_s: float,
    params: dict[str, Any],
    *,
    now: datetime | None = None,
) -> str:
    """The fdsnws-event query URL for one poll (pure).

    ``format=text`` and ``orderby=time``; ``updatedafter = since - overlap_s`` when ``since`` is
    given (``starttime`` instead when ``params["updatedafter"]`` is false). Without ``since`` and
    with ``now``, ``starttime = now - params["lookback_s"]`` (default one day) unless configured.
    Other ``params`` are passed through as query parameters and override the defaults.
    """
    split = urlsplit(base_url)
    query: dict[str, str] = dict(parse_qsl(split.query, keep_blank_values=True))
    query.setdefault("format", "text")
    query.setdefault("orderby", "time")
    use_updatedafter = params.get("updatedafter", True) is not False
    if since is not None:
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        start = (since - timedelta(seconds=overlap_s)).astimezone(UTC)
        query["updatedafter" if use_updatedafter else "starttime"] = start.strftime(TIME_FORMAT)
    elif now is not None and "starttime" not in params and "starttime" not in query:
        lookback = float(params.get("lookback_s", DEFAULT_LOOKBACK_S))
        query["starttime"] = (now - timedelta(seconds=lookback)).astimezone(UTC).strftime(
            TIME_FORMAT
        )
    for key, value in params.items():
        if key in OPTION_KEYS:
            continue
        query[key] = _query_value(value)
    return urlunsplit(split._replace(query=urlencode(query, safe=":,")))


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(TIME_FORMAT)
    if isinstance(value, (list, tuple)):
        return ",".join(_query_value(v) for v in value)
    return str(value)


# --- QuakeML --------------------------------------------------------------------------------


# --- Source ---------------------------------------------------------------------------------


class FdsnSource:
    """Polls one fdsnws-event node with ``format=text``."""

    accept = TEXT_TYPES

    def __init__(self, config: SourceConfig) -> None:
        if not config.url:
            raise ConfigError(f"source {config.name}: fdsn needs url")
        self.name = config.name
        self.config = config

    def query_url(self, since: datetime | None, now: datetime) -> str:
        return build_query_url(
            self.config.url or "", since, self.config.overlap_s, self.config.params, now=now
        )

    async def fetch(self, session: aiohttp.ClientSession, since: datetime | None) -> bytes:
        url = self.query_url(since, datetime.now(UTC))
        nodata = (204, 404) if str(self.config.params.get("nodata", "")) == "404" else (204,)
        return await http_get(session, url, self.config, accept=self.accept, nodata=nodata)

    def parse(self, body: bytes) -> ParseResult:
        status = self.config.params.get("status", "reviewed")
        return parse_fdsn_text(body, self.name, default_status=status)
