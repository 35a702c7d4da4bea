"""Minimal readers of the catalogue fixtures in tests/fixtures/catalogs/ for the sequence tests.

Independent of quakealert.sources.replay on purpose: core tests must not depend on a parser
that another module owns. Each row becomes a Report and then one Event (no association).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from quakealert.core.sequences import events_from_reports
from quakealert.model import Event, Report

CATALOGS = Path(__file__).parent / "fixtures" / "catalogs"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@cache
def _scedc(name: str) -> tuple[Event, ...]:
    reports = []
    with (CATALOGS / name).open(newline="") as f:
        for row in csv.DictReader(f):
            reports.append(
                Report(
                    source="scedc",
                    source_id=row["id"],
                    origin_at=parse_time(row["time"]),
                    latitude=float(row["latitude"]),
                    longitude=float(row["longitude"]),
                    depth_km=float(row["depth"]),
                    magnitude=float(row["mag"]),
                    mag_type=row["magType"],
                    event_type="earthquake" if row["eventType"] == "eq" else row["eventType"],
                )
            )
    return tuple(events_from_reports(reports))


def ridgecrest() -> list[Event]:
    """SCEDC Ridgecrest 2019, 25,565 events M >= 1."""
    return list(_scedc("scedc-ridgecrest-2019.csv"))


def cahuilla() -> list[Event]:
    """SCEDC Cahuilla swarm 2016-2019, all magnitudes."""
    return list(_scedc("scedc-cahuilla-swarm-2016-2019.csv"))


@cache
def _lhasa() -> tuple[Event, ...]:
    reports = []
    with (CATALOGS / "usgs-lhasa-300km-m5-1905-2018.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            reports.append(
                Report(
                    source="usgs",
                    source_id=row["id"],
                    origin_at=parse_time(row["time"]),
                    latitude=float(row["latitude"]),
                    longitude=float(row["longitude"]),
                    depth_km=float(row["depth"]) if row["depth"] else None,
                    magnitude=float(row["mag"]),
                    mag_type=row["magType"],
                    place=row["place"],
                )
            )
    return tuple(events_from_reports(reports))


def lhasa_usgs() -> list[Event]:
    """USGS ComCat M >= 5 within 300 km of Lhasa, 1905-2018."""
    return list(_lhasa())


M45_EPICENTRE = (29.85, 92.25)


def cenc_news(sequence: str | None = None) -> list[Event]:
    """CENC official rows transcribed from news; the epicentre-less row gets the M4.5 epicentre.

    The 2024-10-31 M4.1 row has no epicentre in its article; it is ASSUMED to lie at the M4.5
    epicentre (29.85N 92.25E, 10 km), which CENC placed in the same county a week later.
    """
    reports = []
    with (CATALOGS / "cenc-tibet-events-from-news.csv").open(newline="") as f:
        for n, row in enumerate(csv.DictReader(f)):
            if sequence is not None and row["sequence"] != sequence:
                continue
            lat, lon = (
                (float(row["latitude"]), float(row["longitude"]))
                if row["latitude"]
                else M45_EPICENTRE
            )
            reports.append(
                Report(
                    source="cenc",
                    source_id=f"cenc-{row['time_utc'][:16].replace(':', '')}-{n}",
                    origin_at=parse_time(row["time_utc"]),
                    latitude=lat,
                    longitude=lon,
                    depth_km=float(row["depth_km"]) if row["depth_km"] else 10.0,
                    magnitude=float(row["mag"]),
                    mag_type=row["mag_type"],
                    place=row["location_c"],
                )
            )
    return events_from_reports(reports)


SCENARIO = Path(__file__).parent.parent / "catalogs" / "scenarios" / "cenc-lhasa-300km-2015-2025.csv"


@cache
def _cenc_lhasa() -> tuple[Event, ...]:
    reports = []
    with SCENARIO.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            reports.append(
                Report(
                    source="cenc",
                    source_id=row["source_id"],
                    origin_at=parse_time(row["time"]),
                    latitude=float(row["latitude"]),
                    longitude=float(row["longitude"]),
                    depth_km=float(row["depth_km"]),
                    magnitude=float(row["magnitude"]),
                    mag_type=row["mag_type"],
                    place=row["location_c"],
                )
            )
    return tuple(events_from_reports(reports))


def cenc_lhasa() -> list[Event]:
    """The bundled scenario: CENC speed-report list, M >= 3 within 300 km of 29.85N 92.25E,
    2015-01-01 to 2025-11-25 BJT (200 events)."""
    return list(_cenc_lhasa())


def cenc_lhasa_event(time_utc: str) -> Event:
    """One event of the bundled scenario by its UTC origin time (``2024-11-06T20:19:53``)."""
    at = parse_time(time_utc + "+00:00")
    [e] = [e for e in _cenc_lhasa() if e.origin_at == at]
    return e
