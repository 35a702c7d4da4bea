"""Notices and subscribers in SQLite: state transitions, places coarsened, counts by area."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quakealert.errors import InvalidRequest, NotFound
from quakealert.model import Message, Notice
from quakealert.store.notices import (
    AreaCircle,
    list_notices,
    load_notice,
    load_stored_notice,
    save_notice,
    set_notice_state,
)
from quakealert.store.subscribers import (
    add_subscriber,
    count_by_area,
    delete_subscriber,
    parse_places,
    parse_subscriber,
    subscriber_points,
)

NOW = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)
N = Notice(id="n1", sequence_id="s1", event_id="e1", kind="swarm_advisory", msg_type="Update",
           messages=(Message("zh", "震群", "注意"), Message("bo", "ས་ཡོམ།", "ཉེན་སྲུང་།")),
           created_at=NOW, urgency="low", references=("n0",), exercise=True, url="https://x/1")


def test_notice_round_trip_and_states(store):
    """A notice comes back equal; approval moves it to released with the time; illegal moves fail."""
    save_notice(store.conn, N, "pending_approval", area=AreaCircle(29.85, 92.25, 150.0, "墨竹工卡县"))
    assert load_notice(store.conn, "n1") == N
    with pytest.raises(InvalidRequest):
        save_notice(store.conn, N, "released")  # same id twice
    s = set_notice_state(store.conn, "n1", "released", at=NOW + timedelta(minutes=3),
                         reason="approved by duty")
    assert s.state == "released" and s.released_at == NOW + timedelta(minutes=3)
    assert s.area == AreaCircle(29.85, 92.25, 150.0, "墨竹工卡县")
    with pytest.raises(InvalidRequest):
        set_notice_state(store.conn, "n1", "rejected", at=NOW)
    set_notice_state(store.conn, "n1", "expired", at=NOW + timedelta(days=2))
    assert load_stored_notice(store.conn, "n1").released_at == NOW + timedelta(minutes=3)
    with pytest.raises(NotFound):
        load_notice(store.conn, "nope")


def test_list_notices_filters(store):
    """Filter by sequence and state, newest first."""
    for i, seq in enumerate(["s1", "s2", "s1"]):
        n = Notice(id=f"n{i}", sequence_id=seq, event_id="e", kind="k", msg_type="Alert",
                   messages=(), created_at=NOW + timedelta(minutes=i))
        save_notice(store.conn, n, "released" if i != 1 else "pending_approval")
    assert [s.notice.id for s in list_notices(store.conn, "s1")] == ["n2", "n0"]
    assert [s.notice.id for s in list_notices(store.conn, state="pending_approval")] == ["n1"]


def test_subscriber_place_is_coarse_and_area_set(store):
    """Stored places are rounded to 0.01 degree; the area is the nearest seat."""
    places = parse_places('[a]\nkind="county"\nlat=29.0\nlon=91.0\n'
                          '[b]\nkind="district"\nlat=30.0\nlon=92.0\n'
                          '[p]\nkind="prefecture"\nlat=29.66\nlon=91.14\n')
    sub = parse_subscriber({"latitude": 29.654999, "longitude": 91.13456, "channel": "webhook",
                            "url": "https://gw.example/h"})
    assert (sub.latitude, sub.longitude) == (29.65, 91.13)
    assert "29.65" not in repr(sub) and "gw.example" not in repr(sub)
    c = add_subscriber(store.conn, sub, now=NOW, places=places)
    add_subscriber(store.conn, parse_subscriber({"latitude": 29.9, "longitude": 91.9,
                                                 "channel": "webhook",
                                                 "url": "https://gw.example/h"}),
                   now=NOW, places=places)
    assert count_by_area(store.conn) == {"a": 1, "b": 1}
    pts = subscriber_points(store.conn)
    assert pts.lat.tolist() == [29.65, 29.9] and pts.min_intensity.tolist() == [3, 3]
    assert not delete_subscriber(store.conn, c.id, "wrong")
    assert delete_subscriber(store.conn, c.id, c.token)
    assert not delete_subscriber(store.conn, c.id, c.token)
    assert len(subscriber_points(store.conn)) == 1
