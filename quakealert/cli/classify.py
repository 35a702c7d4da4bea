"""`quakealert classify FILE`: group a catalogue file into typed sequences and print them.

``--at`` is the classification time (``now``); by default it is the origin time of the last
event in the file, so a finished catalogue is typed as it stood when it was cut.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from quakealert.config import load_settings
from quakealert.core.classify import TYPE_ZH, classify_events, sequence_to_json
from quakealert.core.geo import distance_km
from quakealert.core.sequences import SequenceParams, events_from_reports, params_from_section
from quakealert.errors import QuakealertError
from quakealert.formats.catalog import parse_columns, read_catalog_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="catalogue file (CSV, xlsx, FDSN text, QuakeML, GeoJSON)")
    parser.add_argument("--at", help="classification time, ISO 8601 UTC (default: last event)")
    parser.add_argument("--region", help="LAT,LON[,RADIUS_KM]: only events within the circle "
                        "(radius default: [sequences] region_radius_km, 200 km)")
    parser.add_argument("--json", action="store_true", help='print {"sequences": [...]}')
    parser.add_argument("--config", type=Path, help="TOML config; its [sequences] section applies")
    parser.add_argument("--columns", help="CSV and xlsx: role=header,... for columns the header "
                        "synonyms miss (roles: time, latitude, longitude, depth, magnitude, id, "
                        "mag_type, place, event_type)")
    parser.add_argument("--min-events", type=int, default=1,
                        help="text mode: only sequences with at least this many events")


def _parse_at(text: str) -> datetime:
    at = datetime.fromisoformat(text.strip())
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    try:
        params = (params_from_section(load_settings(args.config).section("sequences"))
                  if args.config else SequenceParams())
        parsed = read_catalog_file(args.file, columns=parse_columns(args.columns))
        events = [e for e in events_from_reports(parsed.reports) if e.status != "deleted"]
        if args.region:
            parts = [float(x) for x in args.region.split(",")]
            if len(parts) not in (2, 3):
                raise ValueError("--region needs LAT,LON[,RADIUS_KM]")
            radius = parts[2] if len(parts) == 3 else params.region_radius_km
            events = [e for e in events
                      if distance_km(parts[0], parts[1], e.latitude, e.longitude) <= radius]
        if not events:
            print("no events", file=sys.stderr)
            return 1
        at = _parse_at(args.at) if args.at else max(e.origin_at for e in events)
    except (OSError, ValueError, QuakealertError) as err:
        print(f"quakealert classify: {err}", file=sys.stderr)
        return 2
    results = classify_events(events, params, at)
    if args.json:
        out = {"classified_at": at.isoformat().replace("+00:00", "Z"),
               "skipped_rows": len(parsed.skipped),
               "sequences": [sequence_to_json(s, c, at, members=False) for s, c in results]}
        json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    print(f"{len(events)} events, {len(results)} sequences, classified at {at:%Y-%m-%d %H:%M:%S} UTC")
    for seq, c in sorted(results, key=lambda r: -(r[1].largest_magnitude or -99)):
        if c.n_events < args.min_events:
            continue
        lg = c.largest
        print()
        print(f"{seq.id}  {c.type} {TYPE_ZH[c.type]}  {'final' if c.final else 'provisional'}  "
              f"{c.n_events} events")
        if lg is not None:
            print(f"  largest: M{c.largest_magnitude:.1f} {c.largest_mag_type or ''} {lg.id} "
                  f"{lg.origin_at:%Y-%m-%d %H:%M:%S} UTC ({lg.latitude:.3f}, {lg.longitude:.3f})")
        dm = "—" if c.delta_m is None else f"{c.delta_m:.2f}"
        rq = "—" if c.energy_ratio is None else f"{c.energy_ratio:.3f}"
        print(f"  ΔM {dm}  Rq {rq}  Mc {c.mc if c.mc is not None else '—'}  agency {c.agency}"
              + (f"  flags {','.join(c.flags)}" if c.flags else ""))
        for r in c.reasons:
            print(f"  - {r.en}\n    {r.zh}")
        if c.context is not None:
            print(f"  context: {c.context.en}\n           {c.context.zh}")
        if c.forecast is not None:
            print(f"  forecast: {c.forecast.en}")
    return 0
