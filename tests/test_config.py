"""Config files: the deploy example loads, catalogs merge, mistakes are clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from quakealert.config import REPO_ROOT, load_settings
from quakealert.errors import ConfigError


def test_deploy_example_loads_with_every_catalog() -> None:
    """deploy/quakealert.toml names CENC, USGS, EMSC and GEOFON through catalogs/, CENC first."""
    s = load_settings(REPO_ROOT / "deploy" / "quakealert.toml")
    by_name = {c.name: c for c in s.sources}
    assert set(by_name) == {"cenc", "usgs", "emsc", "geofon"}
    assert by_name["cenc"].priority < by_name["usgs"].priority < by_name["emsc"].priority
    assert by_name["cenc"].interval_s == 60 and by_name["cenc"].url


def test_deploy_example_is_accepted_by_every_subsystem(tmp_path: Path) -> None:
    """Each table of the example parses in the subsystem that reads it (the daemon would start)."""
    from quakealert.core.policy import PolicyParams
    from quakealert.core.sequences import params_from_section
    from quakealert.service.dispatch import OutboxSettings
    from quakealert.service.pipeline import approval_rules

    s = load_settings(REPO_ROOT / "deploy" / "quakealert.toml")
    assert PolicyParams.from_config(s.section("policy")).quiet_start == "23:00"
    assert params_from_section(s.section("sequences")).region_radius_km == 200.0
    assert approval_rules(s.section("approvals"))["swarm_advisory"].timeout_s == 600
    OutboxSettings.from_section(s.section("outbox"))
    from quakealert.service.pipeline import Pipeline
    from quakealert.store.sqlite import Store

    store = Store.open(tmp_path / "q.sqlite")
    assert Pipeline(store, s).base_url == "https://quakealert.example.org"
    store.close()


@pytest.mark.parametrize("text, message", [
    ("[polcy]\nquiet_start = '23:00'\n", "unknown tables polcy"),
    ("[[sources]]\nname = 'x'\nkind = 'nope'\nurl = 'http://127.0.0.1/'\n", "kind must be one of"),
    ("[[sources]]\nname = 'x'\nkind = 'fdsn'\n", "fdsn needs url"),
    ("[[sources]]\ncatalog = 'nowhere'\n", "unknown catalog 'nowhere'"),
    ("[[sources]]\nname = 'x'\nkind = 'fdsn'\nurl = 'http://127.0.0.1/'\ninterval = 5\n",
     "unknown keys: interval"),
    ("not toml = = 1", "cannot read config"),
])
def test_config_mistakes_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    """Misspelt tables and keys, unknown kinds and catalogs fail loudly with what is wrong."""
    path = tmp_path / "q.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(path)
