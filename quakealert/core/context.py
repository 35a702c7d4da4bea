"""The CENC report's regional context line (reference/seismology.md §1.7).

"震中周边200千米内近5年来发生3级以上地震共N次，…": M >= 3 within 200 km over the 5 years up to
the event, counted with one agency's magnitudes. The event itself is counted (CENC's report says
of the count "本次地震是其中最大的一次", so it is one of them); the largest quake before it is
named separately so a notice can say 此前最大为2024年10月31日4.1级.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from quakealert.core.geo import distance_km
from quakealert.model import Event

BEIJING = timedelta(hours=8)


@dataclass(frozen=True, slots=True)
class ContextQuake:
    """One quake the context line names: event id, the agency's magnitude, origin time (UTC)."""

    event_id: str
    magnitude: float
    origin_at: datetime


@dataclass(frozen=True, slots=True)
class Context:
    """Regional context of one event: M >= min_magnitude quakes nearby, and its rank."""

    event_id: str
    magnitude: float
    radius_km: float
    years: float
    min_magnitude: float
    agency: str
    count: int  # quakes counted, this event included when it is M >= min_magnitude
    largest: ContextQuake  # the largest counted (this event when it is the largest; ties too)
    largest_before: ContextQuake | None  # the largest before this event; None when none was
    rank: int  # 1 = this event is the largest (ties count as largest)
    en: str
    zh: str

    @property
    def is_largest(self) -> bool:
        """This event is the largest of those counted."""
        return self.rank == 1

    @property
    def prior_count(self) -> int:
        """Quakes counted before this event."""
        return self.count - (1 if self.magnitude >= self.min_magnitude else 0)


def _fmt_m(m: float) -> str:
    return f"{m:.1f}"


def regional_context(
    event: Event,
    magnitude: float,
    background: Iterable[Event],
    agency: str,
    *,
    radius_km: float = 200.0,
    years: float = 5.0,
    min_magnitude: float = 3.0,
) -> Context:
    """Count quakes M >= ``min_magnitude`` within ``radius_km`` over ``years`` up to ``event``.

    Only ``agency``'s magnitudes are used (events it did not report are left out); later events
    are not counted. Dates in the Chinese sentence are Beijing time, as CENC writes them; the
    English one uses UTC.
    """
    start = event.origin_at - timedelta(days=365.25 * years)
    prior: list[ContextQuake] = []
    for e in background:
        if e.id == event.id or e.status == "deleted" or not start <= e.origin_at < event.origin_at:
            continue
        got = e.magnitude_from(agency)
        if got is None or got[0] < min_magnitude:
            continue
        if distance_km(event.latitude, event.longitude, e.latitude, e.longitude) > radius_km:
            continue
        prior.append(ContextQuake(e.id, got[0], e.origin_at))
    this = ContextQuake(event.id, magnitude, event.origin_at)
    count = len(prior) + (1 if magnitude >= min_magnitude else 0)
    rank = 1 + sum(1 for q in prior if q.magnitude > magnitude)
    before = max(prior, key=lambda q: (q.magnitude, q.origin_at), default=None)
    largest = this if rank == 1 or before is None else before
    # The notices' wording (messages/glossary s.context_*), so the dashboard, the API, the
    # notices, /n/ and CAP say one sentence (issue 8 §2); 千米 as in every notice.
    r, y, mm = f"{radius_km:g}", f"{years:g}", f"{min_magnitude:g}"
    zh = f"震中周边{r}千米内近{y}年来发生{mm}级以上地震共{count}次"
    quakes = "1 earthquake" if count == 1 else f"{count} earthquakes"
    en = (f"Within {r} km of the epicentre there have been {quakes} of M{mm} or larger in the "
          f"past {y} years")
    if before is None and count == 1:
        zh += "，即本次地震。"
        en = (f"Within {r} km of the epicentre this is the only earthquake of M{mm} or larger "
              f"in the past {y} years.")
    elif before is None:
        zh += "。"
        en += "."
    elif rank == 1:
        zh += (f"，本次地震是其中最大的一次。此前最大为{_zh_date(before.origin_at)}"
               f"{_fmt_m(before.magnitude)}级地震。")
        en += (f"; this is the largest of them. The largest before it was "
               f"M{_fmt_m(before.magnitude)} on {_en_date(before.origin_at)}.")
    else:
        zh += f"，其中最大为{_zh_date(before.origin_at)}{_fmt_m(before.magnitude)}级地震。"
        en += f"; the largest was M{_fmt_m(before.magnitude)} on {_en_date(before.origin_at)}."
    return Context(
        event_id=event.id, magnitude=magnitude, radius_km=radius_km, years=years,
        min_magnitude=min_magnitude, agency=agency, count=count, largest=largest,
        largest_before=before, rank=rank, en=en, zh=zh,
    )


def _zh_date(at: datetime) -> str:
    local = at + BEIJING
    return f"{local.year}年{local.month}月{local.day}日"


def _en_date(at: datetime) -> str:
    local = at + BEIJING  # the date in Beijing time, as the notices give it
    return f"{local.day} {local:%b} {local.year}"
