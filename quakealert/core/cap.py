"""CAP 1.2 alerts (one <info> per language) and the Atom feed that lists them.

Field mapping follows reference/messages.md §6.5 (derived from GeoNet's CAP practice, §6.3):
reports are urgency Past, guidance Expected, strong-quake guidance Immediate; certainty from the
measurement status; severity from the CSIS degree at the epicentre (≤V Minor, VI Moderate,
VII Severe, ≥VIII Extreme, mirroring GeoNet's MMI thresholds [U]).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from lxml import etree

from quakealert.core.intensity import csis_degree, predict_intensity
from quakealert.core.render import (
    NoticeContext,
    RenderOptions,
    default_catalog,
    place_names,
    to_tibetan_digits,
)
from quakealert.model import Notice

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_LANGUAGE = {"zh": "zh-CN", "bo": "bo-CN", "en": "en-US"}
EVENT_WORD = {"zh": "地震", "bo": "ས་ཡོམ།", "en": "Earthquake"}  # messages.md §6.5 (< 35 chars)
SENDER_NAME = {
    "zh": "quakealert 地震信息服务",
    "bo": "quakealert",
    "en": "quakealert earthquake information service",
}
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
CapStatus = Literal["Actual", "Exercise", "Test"]

# (urgency, responseType) per message kind: messages.md §6.5.
_KIND_CODES: dict[str, tuple[str, str]] = {
    "quick_report": ("Past", "Monitor"),
    "official_report": ("Past", "Monitor"),
    "felt_guidance": ("Expected", "Prepare"),
    "swarm_advisory": ("Expected", "Monitor"),
    "strong_guidance": ("Immediate", "Shelter"),
    "update": ("Past", "Monitor"),
    "cancel": ("Past", "None"),
    "test": ("Past", "None"),
}


@dataclass(frozen=True, slots=True)
class CapReference:
    """An earlier CAP message this one updates or cancels."""

    sender: str
    identifier: str
    sent_at: datetime


def cap_datetime(at: datetime) -> str:
    """CAP dateTime: seconds precision, explicit offset, never "Z" (CAP 1.2 §3.3.2)."""
    if at.tzinfo is None:
        raise ValueError("naive datetime: instants must be aware UTC")
    return at.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def severity_for(degree: int) -> str:
    """CAP severity from a CSIS degree (messages.md §6.5)."""
    if degree >= 8:
        return "Extreme"
    if degree == 7:
        return "Severe"
    if degree == 6:
        return "Moderate"
    return "Minor"


def certainty_for(kind: str, status: str, type_official: bool = False) -> str:
    """CAP certainty: cancels Unlikely, reviewed Observed, automatic Likely (GeoNet rule, §6.3);
    a swarm advisory resting on our automatic, provisional type is Likely (seismology.md §8.4)."""
    kinds = kind.split("+")
    if "cancel" in kinds:
        return "Unlikely"
    if "swarm_advisory" in kinds and not type_official:
        return "Likely"
    return "Observed" if status == "reviewed" else "Likely"


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, ns: str = CAP_NS
) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}")
    if text is not None:
        # XML 1.0 cannot carry C0 controls, lone surrogates or U+FFFE/FFFF; an upstream place
        # name holding one made the whole feed a 500 (issue 9). Printable text is the fast path.
        el.text = text if text.isprintable() else _NOT_XML.sub("", text)
    return el


def _param(info: etree._Element, name: str, value: str) -> None:
    p = _sub(info, "parameter")
    _sub(p, "valueName", name)
    _sub(p, "value", value)


def build_cap(
    notice: Notice,
    ctx: NoticeContext,
    *,
    sender: str,
    status: CapStatus = "Actual",
    area_circle: tuple[float, float, float],
    sent_at: datetime,
    references: Sequence[CapReference] = (),
    expires_h: float = 48.0,
    options: RenderOptions | None = None,
) -> bytes:
    """A CAP 1.2 alert for one notice: one <info> per message language, a circle <area>."""
    if notice.msg_type in ("Update", "Cancel") and not references:
        raise ValueError(f"{notice.msg_type} needs the references of the messages it supersedes")
    if notice.exercise and status == "Actual":
        status = "Exercise"  # a drill must never go out as Actual
    if notice.kind == "test":
        status = "Test"
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _sub(root, "identifier", notice.id)
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_datetime(sent_at))
    _sub(root, "status", status)
    _sub(root, "msgType", notice.msg_type)
    _sub(root, "scope", "Public")
    if status == "Exercise":
        _sub(root, "note", "EXERCISE / 演练")
    if references:
        _sub(
            root,
            "references",
            " ".join(f"{r.sender},{r.identifier},{cap_datetime(r.sent_at)}" for r in references),
        )
    urgency, response = _KIND_CODES.get(notice.kind.split("+")[-1], ("Past", "Monitor"))
    epicentral = csis_degree(predict_intensity(ctx.magnitude, ctx.depth_km, 0.0).mean)
    degree = max(epicentral, ctx.recipient_degree or 0)
    area_specific = ctx.recipient_degree is not None and ctx.recipient_place_key is not None
    lat, lon, radius_km = area_circle
    cat = default_catalog()
    opts = options or RenderOptions()
    for msg in notice.messages:
        info = _sub(root, "info")
        _sub(info, "language", CAP_LANGUAGE[msg.lang])
        _sub(info, "category", "Geo")
        _sub(info, "event", EVENT_WORD[msg.lang])
        _sub(info, "responseType", response)
        _sub(info, "urgency", urgency)
        _sub(info, "severity", severity_for(degree))
        _sub(info, "certainty", certainty_for(notice.kind, ctx.status, ctx.type_official))
        _sub(info, "effective", cap_datetime(sent_at))
        _sub(info, "expires", cap_datetime(sent_at + timedelta(hours=expires_h)))
        _sub(info, "senderName", SENDER_NAME[msg.lang])
        # the short title (Google: < 140 chars, shown first); rendered for an area it names that
        # area ("…，城关区震感轻微"); nothing addresses "your area" (messages.md §6.2, issue 8 §5)
        _sub(info, "headline", msg.push_title or msg.title)
        _sub(info, "description", msg.body)
        if notice.url:
            _sub(info, "web", notice.url)
        _param(info, "EventID", ctx.event_id)
        _param(
            info, "Magnitude", f"{ctx.magnitude:.1f}{' ' + ctx.mag_type if ctx.mag_type else ''}"
        )
        if ctx.depth_km is not None:
            _param(info, "DepthKm", f"{ctx.depth_km:g}")
        _param(info, "Measurement", "automatic" if ctx.status == "automatic" else "reviewed")
        _param(info, "Source", ctx.source.upper())
        if ctx.sequence_type:
            _param(
                info,
                "SequenceType",
                ctx.sequence_type + ("" if ctx.type_official else " (automatic, provisional)"),
            )
        # the epicentre's degree is the most any place sees: named as a maximum (A12 at R = depth)
        _param(info, "MaxIntensityCSIS", str(epicentral))
        if area_specific:
            _param(info, "AreaEstimatedIntensityCSIS", str(ctx.recipient_degree))
        area = _sub(info, "area")
        area_desc, _ = place_names(
            ctx.place_key, ctx.place_text, ctx.latitude, ctx.longitude, msg.lang, cat,
            to_tibetan_digits if msg.lang == "bo" and opts.tibetan_digits else str,
        )
        _sub(area, "areaDesc", area_desc)
        _sub(area, "circle", f"{lat:.4f},{lon:.4f} {radius_km:.1f}")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def build_atom_feed(
    entries: Iterable[tuple[str, str, datetime, str]],
    *,
    feed_id: str,
    title: str,
    updated_at: datetime,
    author: str = "quakealert",
    self_url: str | None = None,
) -> bytes:
    """An Atom (RFC 4287) feed of CAP alerts: (notice_id, title, updated_at, url) per entry."""
    feed = etree.Element(f"{{{ATOM_NS}}}feed", nsmap={None: ATOM_NS})
    _sub(feed, "id", feed_id, ATOM_NS)
    _sub(feed, "title", title, ATOM_NS)
    _sub(feed, "updated", _rfc3339(updated_at), ATOM_NS)
    _sub(_sub(feed, "author", None, ATOM_NS), "name", author, ATOM_NS)
    if self_url:
        link = _sub(feed, "link", None, ATOM_NS)
        link.set("rel", "self")
        link.set("href", self_url)
    for notice_id, entry_title, entry_updated, url in entries:
        entry = _sub(feed, "entry", None, ATOM_NS)
        _sub(
            entry,
            "id",
            f"{feed_id.rstrip('/')}/{notice_id}" if "://" in feed_id else f"{feed_id}:{notice_id}",
            ATOM_NS,
        )
        _sub(entry, "title", entry_title, ATOM_NS)
        _sub(entry, "updated", _rfc3339(entry_updated), ATOM_NS)
        link = _sub(entry, "link", None, ATOM_NS)
        link.set("rel", "alternate")
        link.set("type", "application/cap+xml")
        link.set("href", url)
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _rfc3339(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime: instants must be aware UTC")
    return at.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
