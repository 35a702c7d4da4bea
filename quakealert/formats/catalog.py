"""Any catalogue file we ship or are handed (CSV layouts, FDSN text, QuakeML, GeoJSON, CENC JSON)
into reports, detecting the layout; and the replay's one-JSON-object-per-line wire format."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from quakealert.errors import ParseError
from quakealert.formats.cenc import BEIJING_OFFSET_H, parse_cenc
from quakealert.formats.emsc import parse_emsc_message
from quakealert.formats.eventtypes import quakeml_event_type
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.formats.geojson import parse_geojson
from quakealert.formats.quakeml import parse_quakeml
from quakealert.formats.rows import (
    ROW_ERRORS,
    check_report,
    decode_text,
    finish,
    opt_float,
    parse_utc,
    req_float,
    row_reason,
)
from quakealert.model import STATUSES, ParseResult, Report, ReportStatus

REPLAY_TAG = "[REPLAY]"


_JSONP_HEAD = re.compile(rb"^[\w$.]+\s*\(")


def is_replay(report: Report) -> bool:
    """True for a report that came out of a ReplaySource."""
    return bool(report.place and report.place.startswith(REPLAY_TAG))


def read_catalog_file(path: str | Path, *, source: str | None = None) -> ParseResult:
    """Any supported catalogue file to reports (layout detected from the content).

    ``source`` names the reports; by default: ComCat CSV and GeoJSON -> "usgs", SCEDC CSV ->
    "scedc", CENC CSV/JSON -> "cenc", anything else -> the file's stem.
    """
    path = Path(path)
    body = path.read_bytes()
    return parse_catalog_bytes(body, source=source, default_name=path.stem)


def parse_catalog_bytes(
    body: bytes, *, source: str | None = None, default_name: str = "file"
) -> ParseResult:
    """:func:`read_catalog_file` on bytes already read."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:4096]
    if not head:
        return ParseResult()
    if head.startswith(b"<"):
        return parse_quakeml(body, source or default_name)
    if head.startswith((b"{", b"[", b"(")) or _JSONP_HEAD.match(head):
        return _parse_json_file(body, source, default_name)
    first_line = decode_text(head).splitlines()[0]
    if first_line.startswith("#") and "eventid" in first_line.lower():
        return parse_fdsn_text(body, source or default_name)
    return parse_csv_catalog(body, source=source, default_name=default_name)


def _parse_json_file(body: bytes, source: str | None, default_name: str) -> ParseResult:
    if b'"shuju"' in body[:4096] or b"'shuju'" in body[:4096]:
        return parse_cenc(body, source or "cenc")
    if b'"action"' in body[:200] and b'"data"' in body[:400]:
        return parse_emsc_message(body, source or "emsc")
    return parse_geojson(body, source or "usgs")


def _layout(columns: set[str]) -> str:
    if {"time_bjt", "location_c"} <= columns or {"time_utc", "location_c"} <= columns:
        return "cenc"
    if {"year", "month", "day", "hour", "minute", "seconds", "latitude", "longitude"} <= columns:
        return "split"
    has_mag = "mag" in columns or "magnitude" in columns
    if {"time", "latitude", "longitude"} <= columns and has_mag:
        return "comcat" if ("net" in columns or "updated" in columns) else "scedc"
    return "unknown"


def parse_csv_catalog(
    body: bytes, *, source: str | None = None, default_name: str = "file"
) -> ParseResult:
    """ComCat / SCEDC / CENC / split-date CSV (comma or tab separated) to reports."""
    text = decode_text(body)
    header_line = text.split("\n", 1)[0]
    delimiter = "\t" if header_line.count("\t") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return ParseResult()
    layout = _layout(set(header))
    if layout == "unknown":
        raise ParseError(
            source or default_name, "(file)", f"unknown CSV layout, columns {header[:12]}"
        )
    name = source or {"cenc": "cenc", "comcat": "usgs", "scedc": "scedc"}.get(layout, default_name)
    row_to_report = {"cenc": _cenc_row, "split": _split_row}.get(layout, _comcat_row)
    index = {h: i for i, h in enumerate(header)}
    reports: list[Report] = []
    skipped: list[str] = []
    for row, fields in enumerate(reader, start=1):
        if not fields or not any(f.strip() for f in fields):
            continue
        rec = {h: fields[i].strip() for h, i in index.items() if i < len(fields)}
        sid = _row_id(rec, layout)
        try:
            report = row_to_report(rec, name)
        except ROW_ERRORS as err:
            skipped.append(row_reason(row, sid or None, str(err)))
            continue
        report, problem = check_report(report)
        if problem:
            skipped.append(row_reason(row, report.source_id, problem))
            continue
        reports.append(report)
    return finish(name, reports, skipped)


def _row_id(rec: dict[str, str], layout: str) -> str:
    sid = rec.get("id") or rec.get("event_id") or rec.get("source_id") or ""
    if not sid and layout == "cenc" and rec.get("time_bjt"):
        try:
            sid = cenc_csv_id(rec["time_bjt"])
        except ValueError:
            return ""
    return sid


def _time(text: str | None) -> datetime:
    try:
        return parse_utc(text or "")
    except ValueError as err:
        raise ValueError(f"unparseable time {text!r}") from err


def _comcat_row(rec: dict[str, str], source: str) -> Report:
    """ComCat CSV (time, latitude, longitude, depth, mag, magType, ..., id, updated, place,
    type, ..., status) and the SCEDC CSVs (..., id, eventType, geoType, quality, nph)."""
    sid = rec.get("id", "")
    if not sid:
        raise ValueError("id missing")
    origin_at = _time(rec.get("time"))
    raw_status = rec.get("status", "").lower()
    status: ReportStatus = "reviewed"
    for known in STATUSES:
        if raw_status == known:
            status = known
    event_type = quakeml_event_type(rec.get("type") or rec.get("eventtype"))
    updated = rec.get("updated")
    return Report(
        source=source,
        source_id=sid,
        origin_at=origin_at,
        latitude=_num(rec, "latitude"),
        longitude=_num(rec, "longitude"),
        depth_km=_opt(rec, "depth"),
        magnitude=_opt(rec, "mag") if "mag" in rec else _opt(rec, "magnitude"),
        mag_type=rec.get("magtype") or None,
        status=status,
        updated_at=_time(updated) if updated else None,
        place=rec.get("place") or None,
        agency=rec.get("net") or rec.get("locationsource") or None,
        event_type=event_type or None,
    )


def cenc_csv_id(time_bjt: str) -> str:
    """The stable id of a CENC CSV row without an ``id`` column: ``cenc-YYYYMMDDhhmmss`` (BJT)."""
    when = datetime.fromisoformat(time_bjt.strip())
    return "cenc-" + when.strftime("%Y%m%d%H%M%S")


def _cenc_row(rec: dict[str, str], source: str) -> Report:
    """The CENC CSV layouts: the news transcription (time_utc, time_bjt, time_precision,
    latitude, longitude, depth_km, mag, mag_type, location_c, sequence, source_url, notes [, id])
    and the speed-report list (time, latitude, longitude, depth_km, magnitude, mag_type,
    source_id, time_bjt, location_c, event_type, orig_row, dist_km)."""
    bjt = rec.get("time_bjt", "")
    sid = rec.get("id") or rec.get("source_id") or (cenc_csv_id(bjt) if bjt else "")
    if not sid:
        raise ValueError("neither id nor time_bjt")
    utc = rec.get("time_utc") or rec.get("time")
    if utc:
        origin_at = _time(utc)
    else:
        try:
            origin_at = parse_utc(bjt, offset_h=BEIJING_OFFSET_H)
        except ValueError as err:
            raise ValueError(f"unparseable time {bjt!r}") from err
    if not rec.get("latitude") or not rec.get("longitude"):
        raise ValueError("epicentre missing")
    return Report(
        source=source,
        source_id=sid,
        origin_at=origin_at,
        latitude=_num(rec, "latitude"),
        longitude=_num(rec, "longitude"),
        depth_km=_opt(rec, "depth_km"),
        magnitude=_opt(rec, "mag") if "mag" in rec else _opt(rec, "magnitude"),
        mag_type=rec.get("mag_type") or None,
        status="reviewed",  # 正式测定 (official) parameters: transcribed, or the speed-report list
        place=rec.get("location_c") or None,
        agency="CENC",
        event_type=quakeml_event_type(rec.get("event_type")) or "earthquake",
    )


def _split_row(rec: dict[str, str], source: str) -> Report:
    """Split date/time columns (year, month, day, hour, minute, seconds), e.g. Karakostas 2025."""
    sid = rec.get("event_id") or rec.get("id") or ""
    if not sid:
        raise ValueError("event_id missing")
    try:
        seconds = float(rec["seconds"])
        origin_at = datetime(
            int(rec["year"]), int(rec["month"]), int(rec["day"]),
            int(rec["hour"]), int(rec["minute"]), tzinfo=UTC,
        ) + timedelta(seconds=seconds)
    except (KeyError, ValueError) as err:
        raise ValueError(f"unparseable time ({err})") from err
    return Report(
        source=source,
        source_id=sid,
        origin_at=origin_at,
        latitude=_num(rec, "latitude"),
        longitude=_num(rec, "longitude"),
        depth_km=_opt(rec, "depth"),
        magnitude=_opt(rec, "magnitude") if "magnitude" in rec else _opt(rec, "mag"),
        mag_type=rec.get("magnitude_type") or rec.get("magtype") or None,
        status="reviewed",
    )


def _num(rec: dict[str, str], key: str) -> float:
    try:
        return req_float(rec.get(key), key)
    except ValueError as err:
        raise ValueError(f"{key}: {err}") from err


def _opt(rec: dict[str, str], key: str) -> float | None:
    try:
        return opt_float(rec.get(key))
    except ValueError as err:
        raise ValueError(f"{key}: {err}") from err


def _encode(report: Report) -> dict[str, Any]:
    return {
        "source": report.source,
        "source_id": report.source_id,
        "origin_at": report.origin_at.isoformat(),
        "latitude": report.latitude,
        "longitude": report.longitude,
        "depth_km": report.depth_km,
        "magnitude": report.magnitude,
        "mag_type": report.mag_type,
        "status": report.status,
        "updated_at": report.updated_at.isoformat() if report.updated_at else None,
        "place": report.place,
        "agency": report.agency,
        "event_type": report.event_type,
        "other_ids": list(report.other_ids),
    }


def _decode(item: dict[str, Any]) -> Report:
    return Report(
        source=item["source"],
        source_id=item["source_id"],
        origin_at=datetime.fromisoformat(item["origin_at"]),
        latitude=float(item["latitude"]),
        longitude=float(item["longitude"]),
        depth_km=item.get("depth_km"),
        magnitude=item.get("magnitude"),
        mag_type=item.get("mag_type"),
        status=item.get("status", "reviewed"),
        updated_at=datetime.fromisoformat(item["updated_at"]) if item.get("updated_at") else None,
        place=item.get("place"),
        agency=item.get("agency"),
        event_type=item.get("event_type"),
        other_ids=tuple(item.get("other_ids") or ()),
    )


def encode_lines(reports: Iterable[Report], skipped: Iterable[str] = ()) -> bytes:
    """The replay wire format: one JSON object per line, ``{"skipped": reason}`` for skips."""
    lines = [json.dumps(_encode(r), ensure_ascii=False) for r in reports]
    lines += [json.dumps({"skipped": s}, ensure_ascii=False) for s in skipped]
    return ("\n".join(lines) + "\n").encode() if lines else b""
