"""Instants as the store keeps them (UTC epoch seconds) and as the API writes them (ISO 8601 Z)."""

from __future__ import annotations

from datetime import UTC, datetime


def epoch(at: datetime) -> float:
    """Epoch seconds of an aware instant; a naive one is a bug, not a local time to guess."""
    if at.tzinfo is None:
        raise ValueError("instants must be timezone-aware")
    return at.timestamp()


def epoch_or_none(at: datetime | None) -> float | None:
    return None if at is None else epoch(at)


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def iso(at: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as every API response writes instants."""
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def iso_epoch(value: float | None) -> str | None:
    return None if value is None else iso(datetime.fromtimestamp(value, UTC))
