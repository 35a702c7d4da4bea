"""Settings from TOML. Each subsystem reads its own section; unknown keys are errors."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quakealert.errors import ConfigError

SOURCE_KINDS = ("fdsn", "usgs", "emsc", "cenc", "replay")
REPO_ROOT = Path(__file__).resolve().parent.parent
CATALOGS_DIR = REPO_ROOT / "catalogs"
# The real CENC speed-report list within 300 km of Maizhokunggar, 2015-2025 (catalogs/scenarios/
# README.md); the 2024 swarm begins on 2024-10-21 BJT, so the years before it are background.
DEFAULT_SCENARIO = CATALOGS_DIR / "scenarios" / "cenc-lhasa-300km-2015-2025.csv"
DEFAULT_SCENARIO_START = "2024-10-20T00:00:00Z"


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One catalogue to poll (or replay)."""

    name: str
    kind: str
    url: str | None = None
    path: str | None = None
    interval_s: float = 60.0
    speed: float = 0.0  # replay only: time multiplier, 0 = everything at once
    priority: int = 50  # lower = preferred when several agencies report one quake
    timeout_s: float = 20.0
    max_bytes: int = 20_000_000
    overlap_s: float = 3600.0  # fdsn: re-ask `updatedafter` this far back to catch revisions
    jitter_s: float = 5.0
    params: dict[str, Any] = field(default_factory=dict)  # extra query parameters / options

    def __repr__(self) -> str:  # URLs may carry credentials
        return f"SourceConfig(name={self.name!r}, kind={self.kind!r})"


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole configuration. ``sections`` holds the raw tables other subsystems parse."""

    store_path: Path
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    sources: tuple[SourceConfig, ...] = ()
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    var_dir: Path = Path("var")

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.sections.get(name, {}))


_SOURCE_KEYS = {f for f in SourceConfig.__dataclass_fields__} | {"catalog"}
# Every table a subsystem reads with Settings.section(); a misspelt table is an error, not a
# silently ignored setting (an operator's [polcy] must not leave the defaults in force).
SECTIONS = frozenset({
    "store", "api", "sources", "sequences", "policy", "approvals", "messages", "webpush",
    "webhook", "outbox", "subscriptions", "ratelimit", "auth", "cap", "fdsnws", "demo",
    "backfill",
})


def load_catalog(name: str) -> dict[str, Any]:
    """The TOML of one catalogue service in catalogs/ (usgs, emsc, cenc, ingv, ...)."""
    path = CATALOGS_DIR / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in CATALOGS_DIR.glob("*.toml"))
        raise ConfigError(f"unknown catalog {name!r}; known: {', '.join(known)}")
    with path.open("rb") as f:
        return tomllib.load(f)


def parse_source(table: dict[str, Any], base_dir: Path) -> SourceConfig:
    """One [[sources]] table, merged over its catalogs/<catalog>.toml if it names one."""
    unknown = set(table) - _SOURCE_KEYS
    if unknown:
        raise ConfigError(f"[[sources]] unknown keys: {', '.join(sorted(unknown))}")
    merged: dict[str, Any] = {}
    if "catalog" in table:
        merged.update(load_catalog(str(table["catalog"])))
        merged.setdefault("name", table["catalog"])
    merged.update({k: v for k, v in table.items() if k != "catalog"})
    merged = {k: v for k, v in merged.items() if k in SourceConfig.__dataclass_fields__}
    if "name" not in merged or "kind" not in merged:
        raise ConfigError(f"[[sources]] needs name and kind: {table!r}")
    if merged["kind"] not in SOURCE_KINDS:
        raise ConfigError(f"source {merged['name']}: kind must be one of {SOURCE_KINDS}")
    if merged["kind"] == "replay":
        if not merged.get("path"):
            raise ConfigError(f"source {merged['name']}: replay needs path")
        p = Path(merged["path"])
        if not p.is_absolute():
            p = (base_dir / p) if (base_dir / p).exists() else (REPO_ROOT / p)
        merged["path"] = str(p)
    elif not merged.get("url"):
        raise ConfigError(f"source {merged['name']}: {merged['kind']} needs url")
    try:
        cfg = SourceConfig(**merged)
    except TypeError as err:
        raise ConfigError(f"source {merged['name']}: {err}") from err
    if cfg.interval_s <= 0 or cfg.speed < 0 or cfg.timeout_s <= 0 or cfg.max_bytes <= 0:
        raise ConfigError(f"source {cfg.name}: interval_s, timeout_s, max_bytes > 0; speed >= 0")
    return cfg


def default_settings(var_dir: Path | None = None) -> Settings:
    """The embedded offline default: replay of the real 2015-2025 CENC list around Maizhokunggar
    (the years before the 2024 swarm as background, the swarm played at speed), SQLite in var/."""
    var = var_dir or Path("var")
    return Settings(
        store_path=var / "quakealert.sqlite",
        sources=(
            SourceConfig(
                name="replay-cenc-lhasa",
                kind="replay",
                path=str(DEFAULT_SCENARIO),
                interval_s=1.0,
                # 30,000x from 2024-10-20: the M4.5 of 11-06 20:19 UTC comes after about 51 s,
                # the 30 min rule takes 0.06 s and the whole swarm (to 2025-01-15) about 4.2 min
                speed=30_000.0,
                priority=10,
                jitter_s=0.0,
                params={"source_as": "cenc", "start": DEFAULT_SCENARIO_START,
                        "label": "REPLAY of the CENC list around Maizhokunggar, 2015-2025 "
                                 "(background to 2024-10-20, then the 2024 swarm)"},
            ),
        ),
        sections={"demo": {"subscriber": True}},
        var_dir=var,
    )


def load_settings(path: Path | None) -> Settings:
    """Read a TOML config, or return the embedded default when ``path`` is None."""
    if path is None:
        return default_settings()
    try:
        with Path(path).open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot read config {path}: {err}") from err
    unknown = set(data) - SECTIONS
    if unknown:
        raise ConfigError(f"{path}: unknown tables {', '.join(sorted(unknown))}; known: "
                          f"{', '.join(sorted(SECTIONS))}")
    base = Path(path).resolve().parent
    store = data.pop("store", {})
    if "url" in store:
        # store/postgres exists (store copy, leadership, outbox) but the daemon's SQL has not
        # moved behind the store interface yet: refuse rather than silently run on SQLite.
        raise ConfigError(f"{path}: [store] url (PostgreSQL) is not supported by `quakealert run`"
                          " yet; use [store] path (SQLite). See docs/deploy.md")
    api = data.pop("api", {})
    var = Path(store.get("var_dir", "var"))
    sources = tuple(parse_source(t, base) for t in data.pop("sources", []))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate source names: {names}")
    return Settings(
        store_path=Path(store.get("path", var / "quakealert.sqlite")),
        api_host=str(api.get("host", "127.0.0.1")),
        api_port=int(api.get("port", 8080)),
        sources=sources,
        sections={**{k: v for k, v in data.items() if isinstance(v, dict)},
                  "api": {k: v for k, v in api.items() if k not in ("host", "port")}},
        var_dir=var,
    )
