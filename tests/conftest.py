"""Shared fixtures: paths to recorded fixtures, a temporary store, settings for tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quakealert.config import Settings
from quakealert.store.sqlite import Store

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(relpath: str) -> bytes:
    """The bytes of a recorded fixture under tests/fixtures/."""
    return (FIXTURES / relpath).read_bytes()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "test.sqlite")
    yield s
    s.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(store_path=tmp_path / "test.sqlite", var_dir=tmp_path / "var")
