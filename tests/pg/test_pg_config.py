"""`[store] url` is refused with a clear error until the daemon runs on PostgreSQL."""

from __future__ import annotations

import pytest

from quakealert.config import load_settings
from quakealert.errors import ConfigError


def test_store_url_is_refused_not_ignored(tmp_path):
    """A config naming a PostgreSQL URL fails to load instead of running on SQLite silently."""
    path = tmp_path / "q.toml"
    path.write_text('[store]\nurl = "postgresql://qa@db/qa"\n')
    with pytest.raises(ConfigError, match=r"\[store\] url .*not supported"):
        load_settings(path)


def test_store_path_still_loads(tmp_path):
    """The SQLite setting is unaffected."""
    path = tmp_path / "q.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "x.sqlite"}"\n')
    assert load_settings(path).store_path == tmp_path / "x.sqlite"


def test_two_host_examples_are_refused_until_wired():
    """The deploy/two-host configs are refused with the same clear error: an example never runs
    silently on SQLite (flip this test when the daemon runs on PostgreSQL)."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "deploy" / "two-host"
    for name in ("host-a.toml", "host-b.toml"):
        with pytest.raises(ConfigError, match="docs/deploy.md"):
            load_settings(folder / name)
