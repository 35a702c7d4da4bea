"""USGS GeoJSON: the real-time summary feeds (``all_hour.geojson`` ...) and event detail.

Keeps what the text format lacks: ``status`` (automatic / reviewed / deleted), ``ids`` (the same
quake under other networks' codes) and ``updated``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import ConfigError
from quakealert.formats.geojson import parse_geojson
from quakealert.model import ParseResult
from quakealert.sources.base import (
    JSON_TYPES,
    http_get,
)

# Summary feeds cover a fixed window; after an outage longer than the window we read a longer
# feed so nothing is missed (https://earthquake.usgs.gov/earthquakes/feed/v1.0/geojson.php).
_FEED = re.compile(r"/summary/(?P<level>[a-z0-9._]+)_(?P<period>hour|day|week|month)\.geojson$")
_PERIODS = (("hour", 3600.0), ("day", 86400.0), ("week", 7 * 86400.0), ("month", 30 * 86400.0))


FEED_MARGIN_S = 300.0  # poll jitter and clock skew: switch to the longer feed a little early


def pick_feed_url(url: str, since: datetime | None, now: datetime) -> str:
    """The configured summary feed, or a longer one when ``since`` is older than its window
    (an outage longer than the window would otherwise lose events)."""
    match = _FEED.search(url)
    if match is None or since is None:
        return url
    gap_s = (now - since).total_seconds() + FEED_MARGIN_S
    names = [p for p, _ in _PERIODS]
    configured = names.index(match["period"])
    for name, window_s in _PERIODS[configured:]:
        if gap_s <= window_s or name == "month":
            return url[: match.start("period")] + name + url[match.end("period") :]
    return url  # pragma: no cover - the loop always returns at "month"


class UsgsSource:
    """Reads a USGS GeoJSON summary feed (a rolling window; ``since`` only widens the window)."""

    accept = JSON_TYPES

    def __init__(self, config: SourceConfig) -> None:
        if not config.url:
            raise ConfigError(f"source {config.name}: usgs needs url")
        self.name = config.name
        self.config = config

    async def fetch(self, session: aiohttp.ClientSession, since: datetime | None) -> bytes:
        url = pick_feed_url(self.config.url or "", since, datetime.now(UTC))
        return await http_get(session, url, self.config, accept=self.accept)

    def parse(self, body: bytes) -> ParseResult:
        return parse_geojson(body, self.name)
