"""Great-circle geometry on a spherical Earth (R = 6371 km): distances, destinations, boxes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

EARTH_RADIUS_KM = 6371.0
KM_PER_DEG = math.pi * EARTH_RADIUS_KM / 180.0  # 111.195 km per degree of arc


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def distances_km(lat: float, lon: float, lats: Any, lons: Any) -> np.ndarray:
    """Vectorised haversine: distances in km from one point to arrays of points."""
    p1 = math.radians(lat)
    p2 = np.radians(np.asarray(lats, dtype=float))
    dl = np.radians(np.asarray(lons, dtype=float) - lon)
    h = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    out: np.ndarray = 2 * EARTH_RADIUS_KM * np.arcsin(np.minimum(1.0, np.sqrt(h)))
    return out


def unit_vectors(lats: Any, lons: Any) -> np.ndarray:
    """Points as unit vectors (n, 3): chord lengths give exact great-circle distances."""
    la = np.radians(np.asarray(lats, dtype=float))
    lo = np.radians(np.asarray(lons, dtype=float))
    c = np.cos(la)
    return np.stack([c * np.cos(lo), c * np.sin(lo), np.sin(la)], axis=-1)


def chord_for_km(distance: float) -> float:
    """The unit-sphere chord length that corresponds to a great-circle distance in km."""
    return 2.0 * math.sin(min(math.pi, distance / EARTH_RADIUS_KM) / 2.0)


def km_for_chord(chord: float) -> float:
    """The great-circle distance in km that corresponds to a unit-sphere chord length."""
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, chord / 2.0))


def destination(lat: float, lon: float, bearing_deg: float, distance: float) -> tuple[float, float]:
    """The point ``distance`` km from (lat, lon) along an initial bearing, in degrees."""
    d = distance / EARTH_RADIUS_KM
    p1, l1, b = math.radians(lat), math.radians(lon), math.radians(bearing_deg)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    lon2 = (math.degrees(l2) + 540.0) % 360.0 - 180.0
    return math.degrees(p2), lon2


def bbox(lat: float, lon: float, radius_km: float) -> tuple[float, float, float, float]:
    """A box (min_lat, max_lat, min_lon, max_lon) containing the circle; lons may pass ±180."""
    dlat = radius_km / KM_PER_DEG
    min_lat, max_lat = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    if min_lat <= -90.0 or max_lat >= 90.0 or radius_km >= math.pi * EARTH_RADIUS_KM / 2:
        return min_lat, max_lat, -180.0, 180.0
    # widest longitude span of a small circle (spherical trig: asin(sin r / cos lat))
    s = math.sin(radius_km / EARTH_RADIUS_KM) / math.cos(math.radians(lat))
    dlon = 180.0 if s >= 1.0 else math.degrees(math.asin(s))
    return min_lat, max_lat, lon - dlon, lon + dlon
