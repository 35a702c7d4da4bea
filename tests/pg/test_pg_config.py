"""`[store] url` selects PostgreSQL; it never runs silently beside a SQLite path."""

from __future__ import annotations

from pathlib import Path

import pytest

from quakealert.config import load_settings
from quakealert.errors import ConfigError


def test_store_url_reaches_the_settings(tmp_path):
    """A config naming a PostgreSQL URL loads with that URL (open_store then opens it)."""
    path = tmp_path / "q.toml"
    path.write_text('[store]\nurl = "postgresql://qa@db/qa"\n')
    assert load_settings(path).store_url == "postgresql://qa@db/qa"


def test_url_and_path_together_are_refused(tmp_path):
    """Two stores named at once fail to load instead of one being ignored."""
    path = tmp_path / "q.toml"
    path.write_text(f'[store]\nurl = "postgresql://qa@db/qa"\npath = "{tmp_path / "x.db"}"\n')
    with pytest.raises(ConfigError, match=r"\[store\] url .*set one of them"):
        load_settings(path)


def test_store_path_still_loads(tmp_path):
    """The SQLite setting is unaffected."""
    path = tmp_path / "q.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "x.sqlite"}"\n')
    settings = load_settings(path)
    assert settings.store_path == tmp_path / "x.sqlite" and settings.store_url is None


def test_two_host_examples_load_on_postgresql():
    """The deploy/two-host configs load, both on the same PostgreSQL URL."""
    folder = Path(__file__).resolve().parents[2] / "deploy" / "two-host"
    urls = {load_settings(folder / name).store_url for name in ("host-a.toml", "host-b.toml")}
    assert len(urls) == 1 and next(iter(urls)).startswith("postgresql://")
