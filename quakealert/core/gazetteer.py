"""Counties, districts and prefectures of Tibet and its neighbours: names in zh/bo/en and seats.

The data is ``messages/gazetteer.csv`` (sources and licences in ``messages/GAZETTEER.md``). Callers
read the file and pass its text to :func:`load_gazetteer`; this module does no I/O.

Distances are great-circle (haversine, R = 6371 km) through :mod:`quakealert.core.geo`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from quakealert.core.geo import distance_km, distances_km

COUNTY_KINDS: frozenset[str] = frozenset({"county", "district", "city"})
ALL_KINDS: frozenset[str] = COUNTY_KINDS | {"prefecture"}
BO_STATUSES: frozenset[str] = frozenset({"sourced", "unverified", "composed", "missing"})

# The seats of the Changtang counties lie up to ~250 km apart, so an epicentre there can be
# ~150 km from the nearest seat; beyond 200 km a point is outside the area this table covers.
COUNTY_MAX_KM = 200.0

_REQUIRED = (
    "key", "kind", "zh", "zh_full", "zh_alias", "bo", "bo_status", "en",
    "lat", "lon", "prefecture", "province",
)  # fmt: skip


class GazetteerError(ValueError):
    """The gazetteer text is malformed (a missing column, a bad kind, status or coordinate)."""


@dataclass(frozen=True, slots=True)
class Place:
    """One administrative division: names in three languages and its seat (WGS84 degrees)."""

    key: str  # GB/T 2260 six-digit code
    kind: str  # county | district | city (county-level) | prefecture
    zh: str
    bo: str  # empty when bo_status is "missing"
    bo_status: str  # sourced | unverified | composed | missing (see messages/GAZETTEER.md)
    en: str
    lat: float
    lon: float
    prefecture: str  # key of the prefecture-level division; "" for a prefecture
    province: str  # short zh name of the province, e.g. 西藏


@dataclass(frozen=True, slots=True)
class _Row:
    place: Place
    full: str  # CENC-style location, e.g. 西藏拉萨市墨竹工卡县
    aliases: tuple[str, ...]  # former names of the same division, e.g. 达孜县 for 达孜区


_ETHNIC_PREFECTURE = re.compile(r"((藏|羌|傈僳|蒙古|彝|白|回|纳西|普米|独龙|怒)族)+自治州$")


def _stem(zh: str) -> str:
    """The name without its last character (县/区/市) when something is left to match on."""
    return zh[:-1] if len(zh) >= 3 and zh[-1] in "县区市" else zh


def _short_names(zh: str) -> tuple[str, ...]:
    """CENC's short forms of a prefecture name: 甘孜州 for 甘孜藏族自治州, 阿里 for 阿里地区."""
    if _ETHNIC_PREFECTURE.search(zh):
        return (_ETHNIC_PREFECTURE.sub("", zh) + "州",)
    if zh.endswith("地区"):
        return (zh.removesuffix("地区"),)
    return ()


@dataclass(frozen=True)
class Gazetteer:
    """An immutable table of places with nearest-seat and CENC-name look-ups."""

    places: tuple[Place, ...]
    _rows: tuple[_Row, ...] = field(repr=False)
    _by_key: dict[str, Place] = field(repr=False)
    _lats: np.ndarray = field(repr=False)
    _lons: np.ndarray = field(repr=False)
    _kinds: np.ndarray = field(repr=False)

    def get(self, key: str) -> Place | None:
        """The place with this GB/T 2260 key, or None."""
        return self._by_key.get(key)

    def prefecture_of(self, place: Place) -> Place | None:
        """The prefecture-level division that contains ``place`` (None for a prefecture)."""
        return self._by_key.get(place.prefecture) if place.prefecture else None

    def nearest(
        self, lat: float, lon: float, kinds: Iterable[str] = COUNTY_KINDS
    ) -> tuple[Place, float]:
        """The place of one of ``kinds`` whose seat is nearest to (lat, lon), and its distance in km."""
        wanted = np.isin(self._kinds, list(kinds))
        if not wanted.any():
            raise ValueError(f"no place of kinds {sorted(kinds)}")
        d = np.where(wanted, distances_km(lat, lon, self._lats, self._lons), np.inf)
        i = int(np.argmin(d))
        return self.places[i], float(d[i])

    def county_at(self, lat: float, lon: float, max_km: float = COUNTY_MAX_KM) -> Place | None:
        """The county-level division with the nearest seat, or None beyond ``max_km`` of every seat.

        A nearest seat is not always the county the point lies in (the 2025 Dingri epicentre is
        nearer the Dinggyê seat); prefer :meth:`epicentre_county` when the agency names the county.
        """
        place, d = self.nearest(lat, lon, COUNTY_KINDS)
        return place if d <= max_km else None

    def by_zh_name(self, text: str) -> Place | None:
        """The division named in a CENC LOCATION_C string such as 西藏日喀则市定日县.

        A county-level match wins over a prefecture; among several, the one whose province and
        prefecture also appear in the text, then the longest name. Former names (达孜县, 那曲县)
        and CENC's short 州 for 自治州 are understood. None when nothing in the table is named.
        """
        s = "".join(text.split())
        best: tuple[int, int, int, int] | None = None
        found: Place | None = None
        for row in self._rows:
            p = row.place
            names = (p.zh, *row.aliases, *_short_names(p.zh))
            hits = [n for n in names if n and n in s]
            if not hits and p.kind in COUNTY_KINDS and len(p.zh) >= 3:
                stem = _stem(p.zh)
                hits = [stem + k for k in "县区市" if stem + k in s]
            if not hits:
                continue
            pref = self._by_key.get(p.prefecture)
            pref_named = pref is not None and any(n in s for n in (pref.zh, *_short_names(pref.zh)))
            score = (
                1 if p.kind in COUNTY_KINDS else 0,
                (1 if s.startswith(p.province) else 0) + (1 if pref_named else 0),
                1 if row.full in s else 0,
                max(len(h) for h in hits),
            )
            if best is None or score > best:
                best, found = score, p
        return found

    def epicentre_county(
        self,
        lat: float,
        lon: float,
        location_c: str | None = None,
        max_km: float = COUNTY_MAX_KM,
    ) -> Place | None:
        """The county of an epicentre: the agency's named county when it is in the table, else the
        county with the nearest seat (within ``max_km``)."""
        if location_c:
            named = self.by_zh_name(location_c)
            if named is not None and named.kind in COUNTY_KINDS:
                return named
        return self.county_at(lat, lon, max_km)

    def distance_to_seat_km(self, place: Place, lat: float, lon: float) -> float:
        """Great-circle distance in km from (lat, lon) to the seat of ``place``."""
        return distance_km(lat, lon, place.lat, place.lon)


def _coordinate(text: str, low: float, high: float, key: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise GazetteerError(f"{key}: bad coordinate {text!r}") from err
    if not (low <= value <= high) or math.isnan(value):
        raise GazetteerError(f"{key}: coordinate {value} outside [{low}, {high}]")
    return value


def load_gazetteer(text: str) -> Gazetteer:
    """Parse the gazetteer CSV text (``#`` lines are comments) into a :class:`Gazetteer`."""
    lines = [line for line in io.StringIO(text) if not line.startswith("#")]
    reader = csv.DictReader(lines)
    missing = [c for c in _REQUIRED if c not in (reader.fieldnames or ())]
    if missing:
        raise GazetteerError(f"missing columns: {', '.join(missing)}")
    rows: list[_Row] = []
    for rec in reader:
        key = rec["key"]
        if rec["kind"] not in ALL_KINDS:
            raise GazetteerError(f"{key}: unknown kind {rec['kind']!r}")
        if rec["bo_status"] not in BO_STATUSES:
            raise GazetteerError(f"{key}: unknown bo_status {rec['bo_status']!r}")
        if (rec["bo_status"] == "missing") != (rec["bo"] == ""):
            raise GazetteerError(f"{key}: bo must be empty exactly when bo_status is missing")
        place = Place(
            key=key,
            kind=rec["kind"],
            zh=rec["zh"],
            bo=rec["bo"],
            bo_status=rec["bo_status"],
            en=rec["en"],
            lat=_coordinate(rec["lat"], -90.0, 90.0, key),
            lon=_coordinate(rec["lon"], -180.0, 180.0, key),
            prefecture=rec["prefecture"],
            province=rec["province"],
        )
        aliases = tuple(a for a in rec["zh_alias"].split("|") if a)
        rows.append(_Row(place=place, full=rec["zh_full"], aliases=aliases))
    places = tuple(r.place for r in rows)
    by_key = {p.key: p for p in places}
    if len(by_key) != len(places):
        raise GazetteerError("duplicate keys")
    return Gazetteer(
        places=places,
        _rows=tuple(rows),
        _by_key=by_key,
        _lats=np.array([p.lat for p in places], dtype=float),
        _lons=np.array([p.lon for p in places], dtype=float),
        _kinds=np.array([p.kind for p in places]),
    )
