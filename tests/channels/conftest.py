"""Fixtures for channel tests (helpers live in pushkit.py)."""

from __future__ import annotations

import pytest
from pushkit import UA


@pytest.fixture
def ua() -> UA:
    return UA()
