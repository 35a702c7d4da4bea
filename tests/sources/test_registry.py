"""The SOURCES registry, make_source, and the catalogue TOMLs in catalogs/."""

from __future__ import annotations

from pathlib import Path

import pytest

from quakealert.config import CATALOGS_DIR, SOURCE_KINDS, SourceConfig, parse_source
from quakealert.errors import ConfigError
from quakealert.sources import SOURCES, make_source
from quakealert.sources.base import Source
from quakealert.sources.emsc import DEFAULT_WS_URL, EmscSource
from quakealert.sources.fdsn import FdsnSource

CATALOGS = sorted(p.stem for p in CATALOGS_DIR.glob("*.toml"))
PRIORITY = {"cenc": 10, "usgs": 20, "usgs-fdsn": 20, "emsc": 30, "ingv": 40, "geofon": 40}


def test_registry_covers_every_kind() -> None:
    """One class per configured kind, no more."""
    assert set(SOURCES) == set(SOURCE_KINDS)


def test_catalogs_present() -> None:
    """usgs, emsc, cenc and at least two other fdsnws nodes are bundled."""
    assert {"usgs", "emsc", "cenc", "ingv", "geofon"} <= set(CATALOGS)


@pytest.mark.parametrize("name", CATALOGS)
def test_catalog_toml_builds_a_source(name: str) -> None:
    """Each TOML uses only SourceConfig keys and builds its Source; priorities as agreed."""
    cfg = parse_source({"catalog": name}, Path("."))
    src = make_source(cfg)
    assert isinstance(src, Source) and src.name == name and src.config is cfg
    assert cfg.priority == PRIORITY[name]
    assert cfg.url and cfg.url.startswith(("http://", "https://"))


def test_emsc_and_geofon_options() -> None:
    """EMSC has its websocket URL; GEOFON (SeisComP) is polled by starttime."""
    emsc = make_source(parse_source({"catalog": "emsc"}, Path(".")))
    assert isinstance(emsc, EmscSource) and emsc.ws_url == DEFAULT_WS_URL
    assert emsc.config.url == "https://www.seismicportal.eu/fdsnws/event/1/query"
    geofon = make_source(parse_source({"catalog": "geofon"}, Path(".")))
    assert isinstance(geofon, FdsnSource) and geofon.config.params["updatedafter"] is False


def test_unknown_kind_is_config_error() -> None:
    """A kind outside the registry fails loudly."""
    with pytest.raises(ConfigError):
        make_source(SourceConfig(name="x", kind="carrier-pigeon", url="http://x"))
    with pytest.raises(ConfigError):
        make_source(SourceConfig(name="x", kind="fdsn"))
