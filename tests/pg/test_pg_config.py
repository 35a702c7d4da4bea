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
