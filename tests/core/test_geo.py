"""Great-circle helpers."""

import math

import numpy as np
import pytest

from quakealert.core.geo import (
    KM_PER_DEG,
    bbox,
    chord_for_km,
    destination,
    distance_km,
    distances_km,
    km_for_chord,
)


def test_maizhokunggar_m45_to_m40_is_4_6_km():
    """The M4.5 and M4.0 CENC epicentres are 4.6 km apart (reference §1.8)."""
    assert distance_km(29.85, 92.25, 29.81, 92.26) == pytest.approx(4.55, abs=0.05)


def test_one_degree_of_latitude():
    """One degree of arc is pi R / 180 km."""
    assert distance_km(0, 0, 1, 0) == pytest.approx(KM_PER_DEG, rel=1e-12)


def test_vectorised_matches_scalar_across_the_dateline():
    """The array variant gives the scalar distances, also across ±180°."""
    lats, lons = [10.0, -45.0, 89.0], [179.5, -179.5, 20.0]
    got = distances_km(5.0, -179.9, lats, lons)
    want = [distance_km(5.0, -179.9, a, b) for a, b in zip(lats, lons)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_destination_round_trip():
    """Going 150 km along a bearing lands 150 km away."""
    lat, lon = destination(29.85, 92.25, 37.0, 150.0)
    assert distance_km(29.85, 92.25, lat, lon) == pytest.approx(150.0, rel=1e-9)


def test_chord_round_trip():
    """Chord and arc conversions invert each other."""
    assert km_for_chord(chord_for_km(200.0)) == pytest.approx(200.0, rel=1e-12)


@pytest.mark.parametrize("lat", [0.0, 29.85, 60.0, -75.0])
def test_bbox_contains_circle(lat):
    """Every point of the circle lies inside the box."""
    min_lat, max_lat, min_lon, max_lon = bbox(lat, 10.0, 200.0)
    for b in range(0, 360, 5):
        plat, plon = destination(lat, 10.0, b, 200.0)
        assert min_lat - 1e-9 <= plat <= max_lat + 1e-9
        assert min_lon - 1e-9 <= plon <= max_lon + 1e-9
    assert not math.isclose(min_lon, -180.0)
