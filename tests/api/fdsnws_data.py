"""Reports for the fdsnws tests, read from the real rows in tests/fixtures/fdsnws/."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

from quakealert.model import Report

FIXTURES = Path(__file__).parent.parent / "fixtures" / "catalogs"
INGESTED_AT = datetime(2025, 2, 1, tzinfo=UTC)


def _rows(name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((FIXTURES / name).read_text(encoding="utf-8"))))


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _opt(text: str) -> float | None:
    return float(text) if text.strip() else None


def cenc_reports() -> list[Report]:
    """CENC official determinations (rows without an epicentre are left out)."""
    out = []
    for r in _rows("cenc-tibet-events-from-news.csv"):
        if not r["latitude"]:
            continue
        at = _at(r["time_utc"])
        out.append(Report(
            source="cenc", source_id=f"{at:%Y%m%dT%H%M%S}", origin_at=at,
            latitude=float(r["latitude"]), longitude=float(r["longitude"]),
            depth_km=_opt(r["depth_km"]), magnitude=_opt(r["mag"]), mag_type=r["mag_type"],
            status="reviewed", place=r["location_c"], event_type="earthquake",
        ))
    return out


def usgs_reports() -> list[Report]:
    """USGS ComCat M>=5 rows within 300 km of Lhasa."""
    return [
        Report(
            source="usgs", source_id=r["id"], origin_at=_at(r["time"]),
            latitude=float(r["latitude"]), longitude=float(r["longitude"]),
            depth_km=_opt(r["depth"]), magnitude=_opt(r["mag"]), mag_type=r["magType"] or None,
            status="automatic" if r["status"] == "automatic" else "reviewed",
            updated_at=_at(r["updated"]), place=r["place"] or None, event_type=r["type"],
        )
        for r in _rows("usgs-lhasa-300km-m5-1905-2018.csv")
    ]


def scedc_reports() -> list[Report]:
    """SCSN rows of the 2010 Pico Rivera area."""
    return [
        Report(
            source="scedc", source_id=r["id"], origin_at=_at(r["time"]),
            latitude=float(r["latitude"]), longitude=float(r["longitude"]),
            depth_km=_opt(r["depth"]), magnitude=_opt(r["mag"]), mag_type=r["magType"],
            status="reviewed", event_type="earthquake",
        )
        for r in _rows("scedc-pico-rivera-2010.csv")
    ]


def all_reports() -> list[Report]:
    return cenc_reports() + usgs_reports() + scedc_reports()
