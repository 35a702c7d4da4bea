"""Catalogue sources: pure ``parse_*`` functions plus thin async fetches.

A new catalogue means one module, one fixture folder, one TOML in ``catalogs/`` and one line in
:data:`SOURCES` (STYLE.md: an explicit registry, no folder scanning).
"""

from __future__ import annotations

from quakealert.config import SourceConfig
from quakealert.errors import ConfigError
from quakealert.formats.catalog import is_replay, read_catalog_file
from quakealert.formats.cenc import parse_cenc
from quakealert.formats.emsc import parse_emsc_message
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.formats.geojson import parse_geojson
from quakealert.formats.quakeml import parse_quakeml
from quakealert.sources.base import Source
from quakealert.sources.cenc import CencSource
from quakealert.sources.emsc import EmscSource
from quakealert.sources.fdsn import FdsnSource, build_query_url
from quakealert.sources.replay import ReplaySource
from quakealert.sources.usgs import UsgsSource

SOURCES: dict[str, type] = {
    "fdsn": FdsnSource,
    "usgs": UsgsSource,
    "emsc": EmscSource,
    "cenc": CencSource,
    "replay": ReplaySource,
}


def make_source(cfg: SourceConfig) -> Source:
    """The Source object for one configured catalogue."""
    try:
        cls = SOURCES[cfg.kind]
    except KeyError:
        raise ConfigError(f"source {cfg.name}: unknown kind {cfg.kind!r}") from None
    source: Source = cls(cfg)
    return source


__all__ = [
    "SOURCES",
    "CencSource",
    "EmscSource",
    "FdsnSource",
    "ReplaySource",
    "Source",
    "UsgsSource",
    "build_query_url",
    "is_replay",
    "make_source",
    "parse_cenc",
    "parse_emsc_message",
    "parse_fdsn_text",
    "parse_geojson",
    "parse_quakeml",
    "read_catalog_file",
]
