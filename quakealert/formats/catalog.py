"""Any catalogue file we ship or are handed (CSV layouts, CENC's xlsx export, FDSN text, QuakeML,
GeoJSON, CENC JSON) into reports, detecting the layout; and the replay's one-JSON-object-per-line wire format."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
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
    decode_text,
    finish,
    keep_checked,
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


def read_catalog_file(
    path: str | Path, *, source: str | None = None, columns: Mapping[str, str] | None = None
) -> ParseResult:
    """Any supported catalogue file to reports (layout detected from the content).

    ``source`` names the reports; by default: ComCat CSV and GeoJSON -> "usgs", SCEDC CSV ->
    "scedc", CENC CSV/JSON -> "cenc", anything else -> the file's stem. ``columns`` maps
    roles (time, latitude, longitude, depth, magnitude, id, ...) to CSV header names for a file
    whose header the synonyms do not cover (``--columns``).
    """
    path = Path(path)
    body = path.read_bytes()
    return parse_catalog_bytes(body, source=source, default_name=path.stem, columns=columns)


def parse_catalog_bytes(
    body: bytes, *, source: str | None = None, default_name: str = "file",
    columns: Mapping[str, str] | None = None,
) -> ParseResult:
    """:func:`read_catalog_file` on bytes already read."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:4096]
    if not head:
        return ParseResult()
    if head.startswith(b"PK\x03\x04"):  # a zip: CENC's catalogue export is an xlsx workbook
        return parse_xlsx_catalog(body, source=source, default_name=default_name,
                                  columns=columns)
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # OLE2: Excel 97-2003, or an encrypted xlsx
        raise ParseError(source or default_name, "(file)",
                         "an Excel 97-2003 .xls or a password-protected workbook: save it as "
                         ".xlsx without a password, or as CSV")
    if head.startswith(b"<"):
        return parse_quakeml(body, source or default_name)
    if head.startswith((b"{", b"[", b"(")) or _JSONP_HEAD.match(head):
        return _parse_json_file(body, source, default_name)
    first_line = decode_text(head).splitlines()[0]
    if first_line.startswith("#") and "eventid" in first_line.lower():
        return parse_fdsn_text(body, source or default_name)
    return parse_csv_catalog(body, source=source, default_name=default_name, columns=columns)


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
    # ComCat and SCEDC rows carry their network id; without one they are neither (issue 11:
    # such files were taken for SCEDC and every row skipped, "id missing").
    if {"time", "latitude", "longitude", "id"} <= columns and has_mag:
        if "net" in columns or "updated" in columns:
            return "comcat"
        if "magtype" in columns or "eventtype" in columns:
            return "scedc"
    return "unknown"


# Header synonyms for any other CSV (English and Chinese; CENC's own export among them). A
# header is compared after lower-casing and dropping units in brackets: "经度(°)" -> "经度".
SYNONYMS: dict[str, tuple[str, ...]] = {
    "time": ("time", "datetime", "date_time", "origin_time", "origintime", "time_utc",
             "utc_time", "event_time", "发震时刻", "发震时间", "发震日期", "时间", "发震时刻(utc)"),
    "latitude": ("latitude", "lat", "lat_deg", "纬度", "震中纬度"),
    "longitude": ("longitude", "lon", "long", "lng", "lon_deg", "经度", "震中经度"),
    "depth": ("depth", "depth_km", "dep", "深度", "震源深度"),
    "magnitude": ("magnitude", "mag", "m", "ml", "ms", "mw", "震级"),
    "id": ("id", "event_id", "eventid", "evid", "source_id", "事件编号", "编号"),
    "mag_type": ("mag_type", "magtype", "magnitude_type", "震级类型"),
    "place": ("place", "location", "region", "location_c", "震中位置", "参考位置", "地点"),
    "event_type": ("event_type", "eventtype", "type", "事件类型"),
}
REQUIRED_ROLES = ("time", "latitude", "longitude", "magnitude")
_UNITS = re.compile(r"[(（][^)）]*[)）]")
_BEIJING = ("北京时间", "beijing", "bjt", "utc+8", "utc+08")


def parse_columns(text: str | None) -> dict[str, str] | None:
    """``--columns "time=发震时刻,magnitude=Mag"`` as {role: header}; None when not given."""
    if not text:
        return None
    out: dict[str, str] = {}
    for part in text.split(","):
        role, sep, name = part.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise ValueError(f"--columns: {part!r} is not role=header")
        out[role.strip().lower()] = name.strip()
    return out


def _bare(header: str) -> str:
    return _UNITS.sub("", header).strip().lower().replace(" ", "_")


def match_columns(
    header: Iterable[str], columns: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Role -> header name, by ``columns`` first, then by the synonyms; unknown roles absent."""
    names = list(header)
    out: dict[str, str] = {}
    for role, name in (columns or {}).items():
        if role not in SYNONYMS:
            raise ValueError(f"--columns: unknown role {role!r} (roles: {', '.join(SYNONYMS)})")
        found = next((h for h in names if h == name or h.lower() == name.strip().lower()), None)
        if found is None:
            raise ValueError(f"--columns: {role}={name!r} is not a column of the file "
                             f"(columns: {names})")
        out[role] = found
    for role, words in SYNONYMS.items():
        if role in out:
            continue
        for h in names:
            if h not in out.values() and _bare(h) in words:
                out[role] = h
                break
    return out


def parse_csv_catalog(
    body: bytes, *, source: str | None = None, default_name: str = "file",
    columns: Mapping[str, str] | None = None,
) -> ParseResult:
    """ComCat / SCEDC / CENC / split-date CSV (comma or tab separated) to reports; any other
    CSV whose header names time, latitude, longitude and magnitude (synonyms, or ``columns``).

    A file that matches no layout is refused with the columns it has, never read as another.
    """
    text = decode_text(body)
    header_line = text.split("\n", 1)[0]
    delimiter = "\t" if header_line.count("\t") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    return parse_table(reader, source=source, default_name=default_name, columns=columns)


def parse_table(
    rows: Iterable[list[str]], *, source: str | None = None, default_name: str = "file",
    columns: Mapping[str, str] | None = None, first_row: int = 1, where: str = "(file)",
    kind: str = "CSV",
) -> ParseResult:
    """A header row and data rows of strings (a CSV's, or a worksheet's) to reports, by the
    layouts of :func:`parse_csv_catalog`. ``first_row`` is the number skipped rows are reported
    with for the first data row (a worksheet's own row number), ``where`` names the part of the
    file a refusal is about."""
    reader = iter(rows)
    try:
        raw_header = [h.strip() for h in next(reader)]
    except StopIteration:
        return ParseResult()
    header = [h.lower() for h in raw_header]
    layout = "unknown" if columns else _layout(set(header))
    if layout == "unknown":
        try:
            roles = match_columns(raw_header, columns)
        except ValueError as err:
            raise ParseError(source or default_name, where, str(err)) from err
        missing = [r for r in REQUIRED_ROLES if r not in roles]
        if missing:
            raise ParseError(
                source or default_name, where,
                f"unknown {kind} layout: no {', '.join(missing)} column among {raw_header}; "
                "name them with --columns role=header (roles: "
                f"{', '.join(SYNONYMS)})")
        return _parse_named(reader, raw_header, roles, source, default_name, first_row)
    name = source or {"cenc": "cenc", "comcat": "usgs", "scedc": "scedc"}.get(layout, default_name)
    row_to_report = {"cenc": _cenc_row, "split": _split_row}.get(layout, _comcat_row)
    index = {h: i for i, h in enumerate(header)}
    reports: list[Report] = []
    skipped: list[str] = []
    for row, fields in enumerate(reader, start=first_row):
        if not fields or not any(f.strip() for f in fields):
            continue
        rec = {h: fields[i].strip() for h, i in index.items() if i < len(fields)}
        sid = _row_id(rec, layout)
        try:
            report = row_to_report(rec, name)
        except ROW_ERRORS as err:
            skipped.append(row_reason(row, sid or None, str(err)))
            continue
        keep_checked(report, row, report.source_id, reports, skipped)
    return finish(name, reports, skipped)


# Excel's day 0 for serial dates (the 1900 date system, with its phantom 1900-02-29).
_EXCEL_EPOCH = datetime(1899, 12, 30)
# A worksheet's time column: the layouts' own names and the synonyms' (role "time").
_TIME_HEADERS = ("time", "time_bjt", "time_utc")
# The sheet CENC's speed-report export names its catalogue (data/README.md); else the first.
CENC_SHEET = "速报目录"


def _cell_text(value: Any, *, is_time: bool) -> str:
    """A worksheet cell as the text a CSV of the same table would hold.

    Dates come as datetimes (openpyxl applies the cell's date format) or, without a date
    format, as Excel serial days; both are written as ``YYYY-MM-DD hh:mm:ss`` (milliseconds when
    there are any: a serial is exact to about a microsecond, so it is rounded to the
    millisecond). Numbers are written as Python writes them (92.25, 10), text unchanged.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if is_time and isinstance(value, int | float):
        value = _EXCEL_EPOCH + timedelta(days=float(value))
    if isinstance(value, datetime):
        ms = round(value.microsecond / 1000)
        value = value.replace(microsecond=0) + timedelta(milliseconds=ms)
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        return text + (f".{value.microsecond // 1000:03d}" if value.microsecond else "")
    if isinstance(value, float) and value.is_integer() and not is_time:
        return str(int(value))
    return str(value).strip() if isinstance(value, str) else str(value)


def parse_xlsx_catalog(
    body: bytes, *, source: str | None = None, default_name: str = "file",
    columns: Mapping[str, str] | None = None,
) -> ParseResult:
    """An xlsx workbook (CENC's catalogue export: sheet 速报目录, Chinese headers, Beijing time
    as Excel dates) to reports, through the same layouts as a CSV (:func:`parse_table`).

    The sheet named 速报目录 is read if there is one, else the first; its first non-empty row is
    the header. Skipped rows are reported with the worksheet's own row numbers.
    """
    import zipfile

    from openpyxl import load_workbook  # only here: a CSV reader needs no xlsx library

    name = source or default_name
    try:
        book = load_workbook(io.BytesIO(body), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise ParseError(name, "(file)", f"unreadable xlsx workbook: {err}") from None
    try:
        if not book.sheetnames:
            return ParseResult()
        sheet = book[CENC_SHEET] if CENC_SHEET in book.sheetnames else book[book.sheetnames[0]]
        # read-only sheets trust the file's stored dimension, which some writers get wrong
        # (openpyxl docs, "Read-only mode"): read every row there is instead
        sheet.reset_dimensions()
        cells = sheet.iter_rows(values_only=True)
        header: list[str] | None = None
        header_row = 0
        rows: list[list[str]] = []
        time_cols: set[int] = set()
        for number, values in enumerate(cells, start=1):
            if header is None:
                if not any(v is not None and str(v).strip() for v in values):
                    continue
                header = [_cell_text(v, is_time=False) for v in values]
                header_row = number
                try:
                    roles = match_columns(header, columns)
                except ValueError as err:
                    raise ParseError(name, f"sheet {sheet.title!r}", str(err)) from err
                time_cols = {i for i, h in enumerate(header)
                             if h.lower() in _TIME_HEADERS or h == roles.get("time")}
                continue
            rows.append([_cell_text(v, is_time=i in time_cols) for i, v in enumerate(values)])
    finally:
        book.close()
    if header is None:
        return ParseResult()
    return parse_table([header, *rows], source=source, default_name=default_name,
                       columns=columns, first_row=header_row + 1,
                       where=f"sheet {sheet.title!r}", kind="xlsx")


def _parse_named(
    reader: Iterable[list[str]], header: list[str], roles: dict[str, str], source: str | None,
    default_name: str, first_row: int = 1,
) -> ParseResult:
    """Rows of a CSV whose columns were matched by role (synonyms or ``--columns``).

    Times are UTC unless the time header says Beijing time (北京时间, as CENC's export does),
    then they are converted (UTC+8). Rows without an id column get ``<source>-<UTC time>``,
    or for Beijing-time files ``cenc-sb-<BJT yyyymmddHHMMSS>`` (the id the shared CENC extracts
    use), so the same quake read from two files has the same id.
    """
    index = {h: i for i, h in enumerate(header)}
    col = {role: index[h] for role, h in roles.items()}
    beijing = any(word in roles["time"].lower() for word in _BEIJING)
    name = source or ("cenc" if beijing else default_name)
    reports: list[Report] = []
    skipped: list[str] = []
    seen: dict[str, int] = {}

    def get(fields: list[str], role: str) -> str:
        i = col.get(role)
        return fields[i].strip() if i is not None and i < len(fields) else ""

    def number(fields: list[str], role: str) -> float | None:
        """A number of the row, a bad one named by its role and the file's column name."""
        try:
            return opt_float(get(fields, role))
        except ValueError as err:
            raise ValueError(f"{role} ({roles[role]}): {err}") from err

    def required(fields: list[str], role: str) -> float:
        value = number(fields, role)
        if value is None:
            raise ValueError(f"{role} missing")
        return value

    for row, fields in enumerate(reader, start=first_row):
        if not fields or not any(f.strip() for f in fields):
            continue
        sid = get(fields, "id")
        try:
            text = get(fields, "time")
            try:
                origin_at = parse_utc(text, offset_h=BEIJING_OFFSET_H if beijing else 0.0)
            except ValueError as err:
                raise ValueError(f"unparseable time {text!r}") from err
            if not sid:
                if beijing:
                    local = origin_at + timedelta(hours=BEIJING_OFFSET_H)
                    sid = "cenc-sb-" + local.strftime("%Y%m%d%H%M%S")
                else:
                    sid = f"{name}-{origin_at:%Y%m%d%H%M%S%f}"
                n = seen.get(sid, 0) + 1
                seen[sid] = n
                if n > 1:
                    sid = f"{sid}-{n}"
            kind = get(fields, "event_type")
            report = Report(
                source=name,
                source_id=sid,
                origin_at=origin_at,
                latitude=required(fields, "latitude"),
                longitude=required(fields, "longitude"),
                depth_km=number(fields, "depth"),
                magnitude=number(fields, "magnitude"),
                mag_type=get(fields, "mag_type") or (_bare(roles["magnitude"]).upper()
                                                     if _bare(roles["magnitude"]) in
                                                     ("ml", "ms", "mw") else
                                                     ("M" if beijing else None)),
                status="reviewed",
                place=get(fields, "place") or None,
                agency="CENC" if beijing else None,
                event_type=quakeml_event_type(kind) if kind else "earthquake" if beijing
                else None,
            )
        except ROW_ERRORS as err:
            skipped.append(row_reason(row, sid or None, str(err)))
            continue
        keep_checked(report, row, report.source_id, reports, skipped)
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
