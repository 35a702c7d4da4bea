"""CENC (China Earthquake Networks Center, ceic.ac.cn) quick-report list, ``ajax/speedsearch``.

The body is ``{"shuju": [...], "jieguo": ..., "page": ..., "num": ...}``; the live service wraps it
in a JSONP callback, ``jQuery123(...)`` or bare ``(...)``. Times (``O_TIME``, ``SAVE_TIME``) are
Beijing time, UTC+8, without a zone.

Source id: ``NEW_DID`` (e.g. ``CC20191212100824``), falling back to ``CATA_ID`` without its
``.00`` suffix, then to ``id``. ``id`` is a row serial of the web database (38452..38461 in the
sample, one per list entry), so an automatic report and the official one that replaces it are
two rows with two ``id`` values. ``CATA_ID``/``NEW_DID`` is the catalogue event code (network
prefix + origin time rounded to the second; ``NEW_DID`` = ``CATA_ID`` minus ``.00``); it names
the event rather than the row, so it is the one that can survive the automatic -> official
revision. Caveat (not verifiable from one sample with only official rows): the code embeds the
origin time, so if CENC re-codes an event whose official time differs by a second, the
association step must still merge the two reports by time and place (seismology.md §6.3 rule 5).
"""

from __future__ import annotations

from datetime import datetime

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import ConfigError
from quakealert.formats.cenc import parse_cenc
from quakealert.model import ParseResult
from quakealert.sources.base import (
    HTML_TYPES,
    JSON_TYPES,
    JSONP_TYPES,
    TEXT_TYPES,
    http_get,
)


class CencSource:
    """Polls the CENC quick-report list (a rolling window; ``since`` is not sent)."""

    # the live endpoint is a PHP page: text/html or javascript for a JSON(P) body
    accept = JSON_TYPES | JSONP_TYPES | TEXT_TYPES | HTML_TYPES

    def __init__(self, config: SourceConfig) -> None:
        if not config.url:
            raise ConfigError(f"source {config.name}: cenc needs url")
        self.name = config.name
        self.config = config

    async def fetch(self, session: aiohttp.ClientSession, since: datetime | None) -> bytes:
        return await http_get(session, self.config.url or "", self.config, accept=self.accept)

    def parse(self, body: bytes) -> ParseResult:
        return parse_cenc(body, self.name)
