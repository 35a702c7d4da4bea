"""Shared Maizhokunggar 2024 notice context (CENC official parameters, DESIGN.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from quakealert.core.render import (
    NotableEvent,
    NoticeContext,
    OfficialStatement,
    PreviousNotice,
    RegionalContext,
)

M45_AT = datetime(2024, 11, 6, 20, 19, tzinfo=UTC)


@pytest.fixture
def m45() -> NoticeContext:
    """The M4.5 of 2024-11-07 04:19 Beijing time, seen from Chengguan (Lhasa), typed swarm by us."""
    return NoticeContext(
        event_id="cenc-20241107041900",
        origin_at=M45_AT,
        latitude=29.85,
        longitude=92.25,
        depth_km=10.0,
        magnitude=4.5,
        mag_type="M",
        status="reviewed",
        source="cenc",
        place_key="maizhokunggar",
        recipient_place_key="chengguan",
        recipient_degree=3,
        sequence_id="seq-maizhokunggar-2024",
        sequence_type="swarm",
        type_official=False,
        sequence_started_at=datetime(2024, 10, 31, 1, 32, tzinfo=UTC),
        sequence_count=2,
        notable=(
            NotableEvent(datetime(2024, 10, 31, 1, 32, tzinfo=UTC), 4.1),
            NotableEvent(M45_AT, 4.5),
        ),
        context=RegionalContext(
            radius_km=200,
            years=5,
            min_magnitude=3.0,
            count=11,  # the real CENC list: 10 before it plus the M4.5 itself (DESIGN.md)
            largest_magnitude=4.5,
            is_largest=True,
            largest_at=M45_AT,
            largest_before_magnitude=4.1,
            largest_before_at=datetime(2024, 10, 31, 1, 32, tzinfo=UTC),
        ),
        url="https://quakealert.example/n/1",
    )


@pytest.fixture
def outlook() -> OfficialStatement:
    """The Tibet Earthquake Agency's reassurance, quoted (messages.md §1.4)."""
    return OfficialStatement(text="不必过度担忧", source="tibet_ea")


@pytest.fixture
def previous() -> PreviousNotice:
    """An automatic quick report that said M4.8 (for update/cancel kinds)."""
    return PreviousNotice(
        notice_id="n-auto-1",
        sent_at=datetime(2024, 11, 6, 20, 21, tzinfo=UTC),
        titles=(
            ("zh", "【自动测定】拉萨市墨竹工卡县附近4.8级左右地震"),
            ("en", "PRELIMINARY: about M4.8 earthquake near Maizhokunggar County, Lhasa"),
        ),
        origin_at=datetime(2024, 11, 6, 20, 19, 3, tzinfo=UTC),
        latitude=29.95,
        longitude=92.30,
        depth_km=12.0,
        magnitude=4.8,
        place_key="maizhokunggar",
    )
