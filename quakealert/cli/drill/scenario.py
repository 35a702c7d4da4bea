"""Setting a drill up: who the residents are (a seat each, or the office's CSV) and which
reports the catalogue file holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quakealert.cli.subscribers import parse_csv
from quakealert.core.render import MessageCatalog, default_catalog
from quakealert.errors import QuakealertError, SourceError
from quakealert.formats.catalog import parse_columns, read_catalog_file
from quakealert.model import Report
from quakealert.store.subscribers import NewSubscriber, Places, coarsen, load_places

SEAT_KINDS = ("county", "district")
CONTROL_KEY = "control-chengdu"
CONTROL_PLACE = (30.66, 104.07)  # Chengdu, about 1,150 km from Lhasa: must never be notified
CONTROL_NAMES = ("成都（对照）", "Chengdu (control)")
NO_AREA_NAMES = ("无所属县区", "no county/district seat within 100 km")
# RFC 2606: .invalid never resolves, so even a misrouted drill delivery could not reach anyone.
DRILL_TARGET = "https://drill.invalid/{key}"


class DrillInputError(QuakealertError):
    """A drill input (catalogue file, subscriber CSV, --keep directory) cannot be used."""


# -- residents ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Population:
    """Who the drill notifies, how they are filed into areas, and the areas' names (zh, en)."""

    subscribers: tuple[NewSubscriber, ...]
    places: Places
    names: dict[str, tuple[str, str]]
    description: str
    rejected: tuple[str, ...] = ()
    description_zh: str = ""


def area_names(catalog: MessageCatalog) -> dict[str, tuple[str, str]]:
    """Area key -> (zh, en) for every place in the message catalogue."""
    return {k: (p.zh, p.en) for k, p in catalog.places.items()}


def default_population(catalog: MessageCatalog | None = None) -> Population:
    """One zh+bo resident at each county/district seat, plus one in Chengdu as a far control."""
    cat = catalog or default_catalog()
    seats = [p for p in cat.places.values() if p.kind in SEAT_KINDS]
    points = [(p.key, p.lat, p.lon) for p in seats] + [(CONTROL_KEY, *CONTROL_PLACE)]
    subs = tuple(
        NewSubscriber(coarsen(lat), coarsen(lon), ("zh", "bo"), "webhook",
                      DRILL_TARGET.format(key=key), secret="drill-never-sent-" + key)
        for key, lat, lon in points)
    places = Places(tuple(k for k, _, _ in points), np.array([p[1] for p in points]),
                    np.array([p[2] for p in points]))
    names = {**area_names(cat), CONTROL_KEY: CONTROL_NAMES}
    return Population(subs, places, names,
                      f"default drill population: one resident (zh+bo) at each of {len(seats)} "
                      "county/district seats, plus one in Chengdu as a far-away control",
                      description_zh=f"默认演练居民：{len(seats)}个县（区）政府驻地各一人（中文、藏文），"
                                     "另在成都设一人作为远处对照")


def csv_population(path: Path, *, allow_insecure: bool, catalog: MessageCatalog | None = None
                   ) -> Population:
    """Residents from the office's bulk-import CSV (same columns, same validation)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DrillInputError(f"cannot read subscribers {path}: {err}") from None
    good, bad = parse_csv(text, allow_insecure=allow_insecure)
    if not good:
        raise DrillInputError(f"{path}: no usable subscriber rows ({'; '.join(bad[:3])})")
    return Population(tuple(s for _, s in good), load_places(),
                      area_names(catalog or default_catalog()),
                      f"{len(good)} residents from {path.name}", tuple(bad),
                      description_zh=f"{path.name}中的{len(good)}名居民")


def read_reports(path: Path, columns: str | None = None) -> tuple[list[Report], list[str]]:
    """The catalogue's reports and skipped rows; DrillInputError when nothing can be played."""
    try:
        result = read_catalog_file(path, columns=parse_columns(columns))
    except OSError as err:
        raise DrillInputError(f"cannot read {path}: {err.strerror or err}") from None
    except SourceError as err:
        raise DrillInputError(f"{path} is not a catalogue we can read: {err.detail}") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise DrillInputError(f"{path} is not a catalogue we can read: {err}") from None
    if not result.reports:
        why = f" ({'; '.join(result.skipped[:3])})" if result.skipped else ""
        raise DrillInputError(f"{path}: no earthquakes to replay{why}")
    return result.reports, result.skipped
