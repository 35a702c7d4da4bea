"""Values shared by the core and the shell: reports, events, contributors.

A *report* is one agency's view of one quake at one moment; reports are kept forever.
An *event* is the quake itself, derived from its associated reports (DESIGN.md).
All instants are timezone-aware UTC and end in ``_at``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

ReportStatus = Literal["automatic", "reviewed", "deleted"]
STATUSES: tuple[ReportStatus, ...] = ("automatic", "reviewed", "deleted")


# QuakeML EventType values in the words duty staff read in Chinese: CENC's own 事件类型 labels
# where it has one (爆破, 塌陷: formats/eventtypes.py), else the plain Chinese term.
EVENT_TYPE_ZH = {
    "earthquake": "天然地震",
    "explosion": "爆破",
    "quarry blast": "采石爆破",
    "mining explosion": "矿山爆破",
    "chemical explosion": "化学爆炸",
    "nuclear explosion": "核爆炸",
    "collapse": "塌陷",
    "mine collapse": "矿山塌陷",
    "landslide": "滑坡",
    "rockslide": "岩崩",
    "sonic boom": "音爆",
}


def event_type_zh(event_type: str | None) -> str:
    """An event type for the Chinese reason texts (an unlisted type is kept as written)."""
    return EVENT_TYPE_ZH.get(event_type or "", event_type or "未知类型")


@dataclass(frozen=True, slots=True)
class Report:
    """One agency's view of one quake at one moment (a row in a feed)."""

    source: str  # the catalogue that published it: "cenc", "usgs", "emsc", "ingv", ...
    source_id: str  # the agency's own event id, unique within ``source``
    origin_at: datetime
    latitude: float
    longitude: float
    depth_km: float | None
    magnitude: float | None
    mag_type: str | None
    status: ReportStatus = "reviewed"
    updated_at: datetime | None = None  # when the agency last changed it, if it says
    place: str | None = None  # the agency's region name (Flinn-Engdahl, LOCATION_C, ...)
    agency: str | None = None  # author / contributor inside a federated catalogue
    event_type: str | None = None  # QuakeML EventType: "earthquake", "quarry blast", ...
    other_ids: tuple[str, ...] = ()  # USGS `ids`: the same quake under other networks' codes

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.source_id)


@dataclass(frozen=True, slots=True)
class Contributor:
    """One source's current view of an event, as listed to duty staff."""

    source: str
    source_id: str
    origin_at: datetime
    latitude: float
    longitude: float
    depth_km: float | None
    magnitude: float | None
    mag_type: str | None
    status: ReportStatus
    updated_at: datetime | None = None
    event_type: str | None = None  # QuakeML EventType as this source reported it


@dataclass(frozen=True, slots=True)
class Event:
    """A quake: the preferred origin of its associated reports, plus every contributor."""

    id: str
    origin_at: datetime
    latitude: float
    longitude: float
    depth_km: float | None
    magnitude: float | None
    mag_type: str | None
    status: ReportStatus
    preferred_source: str
    contributors: tuple[Contributor, ...] = ()
    place: str | None = None
    review_flags: tuple[str, ...] = ()  # association sanity flags (USGS EventSanityCheck)
    updated_at: datetime | None = None
    event_type: str | None = None  # QuakeML EventType of the preferred report ("earthquake", ...)

    @property
    def is_earthquake(self) -> bool:
        """False for a known non-earthquake (explosion, quarry blast, collapse...); None counts
        as an earthquake because most feeds list only earthquakes and say nothing."""
        return self.event_type is None or self.event_type == "earthquake"

    def magnitude_from(self, source: str) -> tuple[float, str | None] | None:
        """This event's magnitude as reported by one source, or None if it did not report it."""
        for c in self.contributors:
            if c.source == source and c.magnitude is not None and c.status != "deleted":
                return (c.magnitude, c.mag_type)
        return None


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What a parser made of a body: good reports plus the rows it skipped, with reasons."""

    reports: list[Report] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "row 7: latitude 123.0 out of range"


Lang = Literal["zh", "bo", "en"]
MsgType = Literal["Alert", "Update", "Cancel"]


@dataclass(frozen=True, slots=True)
class Message:
    """One notice rendered in one language (CAP <info>, a push title/body, an SMS)."""

    lang: Lang
    title: str
    body: str
    push_title: str = ""  # phone-sized title and body (core.render.PUSH_LIMITS); "" = use title
    push_body: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """What residents are told about one sequence at one moment, in every language.

    ``kind`` is one of the message kinds of reference/messages.md §8: quick_report (K1),
    official_report (K2), felt_guidance (K3), swarm_advisory (K4), strong_guidance (K5),
    update (K6), cancel (K7), test (K9).
    """

    id: str
    sequence_id: str
    event_id: str
    kind: str
    msg_type: MsgType
    messages: tuple[Message, ...]
    created_at: datetime
    urgency: Literal["very-low", "low", "normal", "high"] = "normal"
    references: tuple[str, ...] = ()  # earlier notice ids this one updates or cancels
    exercise: bool = False  # drills: CAP status Exercise, never mistaken for a real alert
    url: str | None = None

    def message(self, lang: str) -> Message | None:
        return next((m for m in self.messages if m.lang == lang), None)
