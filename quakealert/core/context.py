"""The CENC report's regional context line (reference/seismology.md §1.7).

"震中周边200公里内近5年来发生3级以上地震共N次，最大地震是…": M >= 3 within 200 km over the
5 years before the event, counted with one agency's magnitudes; the event itself is not counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from quakealert.core.geo import distance_km
from quakealert.model import Event

BEIJING = timedelta(hours=8)


@dataclass(frozen=True, slots=True)
class Context:
    """Regional context of one event: prior M >= min_magnitude quakes nearby, and its rank."""

    event_id: str
    magnitude: float
    radius_km: float
    years: float
    min_magnitude: float
    agency: str
    count: int
    largest_id: str | None
    largest_magnitude: float | None
    largest_at: datetime | None
    rank: int  # 1 = this event is the largest (ties count as largest)
    en: str
    zh: str


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
    """Count prior quakes M >= ``min_magnitude`` within ``radius_km`` over ``years``.

    Only ``agency``'s magnitudes are used (events it did not report are left out). Dates in
    the Chinese sentence are Beijing time, as CENC writes them; the English one uses UTC.
    """
    start = event.origin_at - timedelta(days=365.25 * years)
    prior: list[tuple[float, datetime, str]] = []
    for e in background:
        if e.id == event.id or e.status == "deleted" or not start <= e.origin_at < event.origin_at:
            continue
        got = e.magnitude_from(agency)
        if got is None or got[0] < min_magnitude:
            continue
        if distance_km(event.latitude, event.longitude, e.latitude, e.longitude) > radius_km:
            continue
        prior.append((got[0], e.origin_at, e.id))
    count = len(prior)
    rank = 1 + sum(1 for m, _, _ in prior if m > magnitude)
    big = max(prior, key=lambda x: (x[0], x[1]), default=None)
    r, y, mm = f"{radius_km:g}", f"{years:g}", f"{min_magnitude:g}"
    zh = f"震中周边{r}公里内近{y}年来发生{mm}级以上地震共{count}次"
    quakes = "1 earthquake" if count == 1 else f"{count} earthquakes"
    en = f"Within {r} km of the epicentre, {quakes} of M{mm} or greater occurred in the past {y} years"
    if count == 0:
        zh += "。"
        en += "."
    elif rank == 1:
        assert big is not None  # count > 0, so there is a largest earlier event
        zh += f"，本次地震为其中最大地震（此前最大为{_zh_date(big[1])}{_fmt_m(big[0])}级地震）。"
        en += (f"; this earthquake is the largest (the largest before it was "
               f"M{_fmt_m(big[0])} on {big[1]:%Y-%m-%d})." if big else ".")
    else:
        assert big is not None
        zh += f"，最大地震是{_zh_date(big[1])}{_fmt_m(big[0])}级地震；本次地震为第{rank}大。"
        en += (f"; the largest was M{_fmt_m(big[0])} on {big[1]:%Y-%m-%d} (UTC); this earthquake "
               f"ranks {_ordinal(rank)} largest.")
    return Context(
        event_id=event.id,
        magnitude=magnitude,
        radius_km=radius_km,
        years=years,
        min_magnitude=min_magnitude,
        agency=agency,
        count=count,
        largest_id=big[2] if big else None,
        largest_magnitude=big[0] if big else None,
        largest_at=big[1] if big else None,
        rank=rank,
        en=en,
        zh=zh,
    )


def _zh_date(at: datetime) -> str:
    local = at + BEIJING
    return f"{local.year}年{local.month}月{local.day}日"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
