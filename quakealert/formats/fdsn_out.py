"""Pure writers for the FDSN event service: QuakeML 1.2, fdsnws text and GeoJSON.

QuakeML depth is in metres; the text format and GeoJSON give depth in km (fdsnws-event 1.2,
reference/duty-api.md §1.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from lxml import etree

from quakealert.model import Contributor, Event

QUAKEML_NS = "http://quakeml.org/xmlns/quakeml/1.2"
BED_NS = "http://quakeml.org/xmlns/bed/1.2"
ID_PREFIX = "smi:quakealert"
CATALOG = "quakealert"
AGENCY = "quakealert"

TEXT_HEADER = (
    "#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID"
    "|MagType|Magnitude|MagAuthor|EventLocationName|EventType"
)

# What XML 1.0 forbids (and lxml refuses with ValueError -> a 500): C0 controls other than tab,
# newline and carriage return, lone surrogates, U+FFFE/U+FFFF. Stored text is cleaned at
# ingest; the writers strip again so an old row can never make a document malformed.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry."""
    return _NOT_XML.sub("", text) if not text.isprintable() else text


# Characters a QuakeML ResourceIdentifier allows after the authority (QuakeML-BED-1.2.xsd).
_UNSAFE_ID = re.compile(r"[^\w\-.*()~'+?=,;#/&]")


def served_type(event: Event) -> str:
    """The QuakeML EventType served: "not existing" once deleted, else the event's type;
    "earthquake" when no feed gave one (most feeds list only earthquakes)."""
    if event.status == "deleted":
        return "not existing"
    return event.event_type or "earthquake"


def event_public_id(event_id: str) -> str:
    """The QuakeML publicID of an event: ``smi:quakealert/event/<id>``."""
    return f"{ID_PREFIX}/event/{_safe(event_id)}"


def event_id_from_public_id(public_id: str) -> str:
    """Our event id from a publicID as written by :func:`event_public_id` (or the bare id)."""
    prefix = f"{ID_PREFIX}/event/"
    return public_id.removeprefix(prefix)


def _safe(text: str) -> str:
    return _UNSAFE_ID.sub("_", text)


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(value: float) -> str:
    return repr(float(value))


def preferred_contributor(event: Event) -> Contributor | None:
    """The contributor whose origin the event shows (None if the event carries none)."""
    live = [c for c in event.contributors if c.source == event.preferred_source]
    live.sort(key=lambda c: c.status == "deleted")
    return live[0] if live else None


def _origins(event: Event, all_origins: bool) -> list[tuple[Contributor, bool]]:
    """(contributor, is_preferred) pairs: the preferred first, then the other live ones."""
    best = preferred_contributor(event)
    if best is None:
        best = Contributor(
            source=event.preferred_source, source_id=event.id, origin_at=event.origin_at,
            latitude=event.latitude, longitude=event.longitude, depth_km=event.depth_km,
            magnitude=event.magnitude, mag_type=event.mag_type, status=event.status,
            updated_at=event.updated_at,
        )
    out = [(best, True)]
    if all_origins:
        out += [(c, False) for c in event.contributors
                if c is not best and c.status != "deleted"]
    return out


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = xml_text(text)
    return el


def _value(parent: etree._Element, tag: str, text: str) -> None:
    _sub(_sub(parent, tag), "value", text)


def _creation(parent: etree._Element, agency: str, at: datetime | None) -> None:
    info = _sub(parent, "creationInfo")
    _sub(info, "agencyID", agency)
    if at is not None:
        _sub(info, "creationTime", _time(at))


def _evaluation(parent: etree._Element, status: str) -> None:
    if status == "automatic":
        _sub(parent, "evaluationMode", "automatic")
        _sub(parent, "evaluationStatus", "preliminary")
    else:
        _sub(parent, "evaluationMode", "manual")
        _sub(parent, "evaluationStatus", "rejected" if status == "deleted" else "reviewed")


def _event_element(
    parent: etree._Element, event: Event, all_origins: bool, all_magnitudes: bool
) -> None:
    ev = _sub(parent, "event")
    ev.set("publicID", event_public_id(event.id))
    base = f"{ID_PREFIX}/event/{_safe(event.id)}"
    pref_origin = pref_mag = None
    magnitudes: list[tuple[Contributor, str, bool]] = []
    if event.place:
        desc = _sub(ev, "description")
        _sub(desc, "text", event.place)
        _sub(desc, "type", "region name")
    for c, is_pref in _origins(event, all_origins):
        oid = f"{base}/origin/{_safe(c.source)}/{_safe(c.source_id)}"
        origin = _sub(ev, "origin")
        origin.set("publicID", oid)
        _value(origin, "time", _time(c.origin_at))
        _value(origin, "latitude", _num(c.latitude))
        _value(origin, "longitude", _num(c.longitude))
        if c.depth_km is not None:
            _value(origin, "depth", _num(round(c.depth_km * 1000.0, 3)))
        _evaluation(origin, c.status)
        _creation(origin, c.source, c.updated_at)
        if is_pref:
            pref_origin = oid
        if c.magnitude is not None and (is_pref or all_magnitudes):
            magnitudes.append((c, oid, is_pref))
    if all_magnitudes and not all_origins:
        for c in event.contributors:
            if c.magnitude is not None and c.status != "deleted" and all(
                c is not m[0] for m in magnitudes
            ):
                oid = f"{base}/origin/{_safe(c.source)}/{_safe(c.source_id)}"
                magnitudes.append((c, oid, False))
    for c, oid, is_pref in magnitudes:
        mid = f"{base}/magnitude/{_safe(c.source)}/{_safe(c.source_id)}"
        mag = _sub(ev, "magnitude")
        mag.set("publicID", mid)
        _value(mag, "mag", _num(c.magnitude))  # type: ignore[arg-type]
        if c.mag_type:
            _sub(mag, "type", c.mag_type)
        # Without all origins the referenced origin is absent; then leave originID out.
        if is_pref or all_origins:
            _sub(mag, "originID", oid)
        _evaluation(mag, c.status)
        _creation(mag, c.source, c.updated_at)
        if is_pref:
            pref_mag = mid
    if pref_origin:
        _sub(ev, "preferredOriginID", pref_origin)
    if pref_mag:
        _sub(ev, "preferredMagnitudeID", pref_mag)
    _sub(ev, "type", served_type(event))
    _creation(ev, AGENCY, event.updated_at)


def events_to_quakeml(
    events: Iterable[Event], *, all_origins: bool = True, all_magnitudes: bool = True,
    public_id: str = f"{ID_PREFIX}/catalog",
) -> bytes:
    """A QuakeML 1.2 document: one origin (and magnitude) per contributor, preferred ones marked."""
    root = etree.Element(f"{{{QUAKEML_NS}}}quakeml", nsmap={"q": QUAKEML_NS, None: BED_NS})
    params = etree.SubElement(root, "eventParameters")
    params.set("publicID", public_id)
    for event in events:
        _event_element(params, event, all_origins, all_magnitudes)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _text_field(value: str | None) -> str:
    if value is None:
        return ""
    if not value.isprintable():  # one row per line: no newline, control or separator inside
        value = " ".join(_CONTROL.sub(" ", value).split())
    return value.replace("|", "/")


def events_to_text(events: Iterable[Event]) -> str:
    """fdsnws-event ``format=text``: the 14-column 1.2 header, one line per event, depth in km."""
    lines = [TEXT_HEADER]
    append = lines.append
    for e in events:
        best = preferred_contributor(e)
        append("|".join((
            e.id,
            e.origin_at.isoformat(timespec="microseconds")[:26],  # UTC, no offset suffix
            _num(e.latitude),
            _num(e.longitude),
            "" if e.depth_km is None else _num(e.depth_km),
            e.preferred_source,
            CATALOG,
            e.preferred_source,
            _text_field(best.source_id if best else ""),
            _text_field(e.mag_type),
            "" if e.magnitude is None else _num(e.magnitude),
            e.preferred_source if e.magnitude is not None else "",
            _text_field(e.place),
            served_type(e),
        )))
    return "\n".join(lines) + "\n"


def _ms(at: datetime | None) -> int | None:
    return None if at is None else round(at.timestamp() * 1000)


def events_to_geojson(events: Sequence[Event]) -> dict[str, Any]:
    """A GeoJSON FeatureCollection in the USGS summary shape (times in epoch ms, depth in km)."""
    features = []
    for e in events:
        features.append({
            "type": "Feature",
            "id": e.id,
            "properties": {
                "mag": e.magnitude,
                "magType": e.mag_type,
                "place": xml_text(e.place) if e.place else None,
                "time": _ms(e.origin_at),
                "updated": _ms(e.updated_at),
                "status": e.status,
                "type": served_type(e),
                "net": e.preferred_source,
                "sources": "," + ",".join(sorted({c.source for c in e.contributors})) + ",",
                "ids": "," + ",".join(f"{c.source}:{c.source_id}" for c in e.contributors) + ",",
                "publicID": event_public_id(e.id),
            },
            "geometry": {
                "type": "Point",
                "coordinates": [e.longitude, e.latitude, e.depth_km],
            },
        })
    return {"type": "FeatureCollection",
            "metadata": {"title": f"{CATALOG} merged catalogue", "count": len(features)},
            "features": features}
