"""`quakealert drill FILE`: replay a catalogue through the whole pipeline, as an exercise.

The drill runs the real pipeline (association, sequences, classification, policy, rendering,
outbox) against a throw-away SQLite store, never the one in the settings. Every notice is an
exercise (CAP status Exercise, titles 【演练】/[EXERCISE]), and every delivery channel is replaced
by a recorder that counts what would have been delivered: nothing leaves the machine.

Residents come from the office's bulk-import CSV (``--subscribers``) or, by default, one resident
at each county/district seat of messages/places.toml (zh + bo) plus one in Chengdu as a far-away
control. The report says what would have been sent, when, to how many residents per area, what
was not sent and why, how long the pipeline took, and how the sequence type evolved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from quakealert.cli.drill.replay import (
    MAX_GAP_S,
    Played,
    RecorderChannel,
    TimedPipeline,
    drain,
    drill,
    play,
    release_held,
)
from quakealert.cli.drill.report import (
    BANNER,
    CAP_SENDER,
    _same_text,
    build_report,
    cap_for,
    times,
)
from quakealert.cli.drill.scenario import (
    CONTROL_KEY,
    NO_AREA_NAMES,
    DrillInputError,
    Population,
    csv_population,
    default_population,
    read_reports,
)
from quakealert.cli.drill.text import LABELS, LANGS, format_html, format_text
from quakealert.config import load_settings
from quakealert.errors import QuakealertError
from quakealert.formats.rows import parse_utc

# What tests, benches and the console's replay use, importable from the command's module.
__all__ = [
    "BANNER", "CAP_SENDER", "CONTROL_KEY", "LABELS", "LANGS", "NO_AREA_NAMES", "DrillInputError",
    "Played", "Population", "RecorderChannel", "TimedPipeline", "_same_text", "add_arguments",
    "build_report", "cap_for", "csv_population", "default_population", "drain", "drill",
    "format_html", "format_text", "play", "read_reports", "release_held", "run", "times",
]


# -- command line ---------------------------------------------------------------------------


def _instant(text: str) -> datetime:
    try:
        return parse_utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"speed must be a number >= 0, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="catalogue file (CSV, xlsx, FDSN text, QuakeML, GeoJSON)")
    parser.add_argument("--subscribers", type=Path, default=None,
                        help="residents as in the bulk-import CSV (default: one per county seat"
                             " of messages/places.toml plus a Chengdu control)")
    parser.add_argument("--speed", type=_speed, default=0.0,
                        help="0 = as fast as possible (default); N = N x real time, each quiet"
                             f" gap at most {MAX_GAP_S:g} s")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML config for policy, messages and approvals (its store is"
                             " never touched)")
    parser.add_argument("--columns", help="CSV and xlsx: role=header,... for columns the header "
                        "synonyms miss (time, latitude, longitude, depth, magnitude, id, ...)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--html", type=Path, default=None, help="also write the report as HTML")
    parser.add_argument("--lang", choices=LANGS, default="en",
                        help="language of the text and HTML report (default en; zh for the"
                             " office's debrief)")
    parser.add_argument("--until", type=_instant, default=None,
                        help="run the scenario clock to this time (ISO 8601, UTC unless an offset"
                             " is given; default: 24 h after the last event)")
    parser.add_argument("--start", type=_instant, default=None,
                        help="reports before this time are background history: stored and"
                             " sequenced first, never notified (e.g. 2024-10-20T00:00:00Z for"
                             " the bundled scenario; default: every report is played)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the drill store (drill.sqlite) and CAP messages in DIR")


def run(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        # one INFO line per notice would bury the report; warnings still show
        logging.getLogger("quakealert").setLevel(logging.WARNING)
    try:
        settings = load_settings(args.config)
        reports, skipped = read_reports(args.file, getattr(args, "columns", None))
        if args.subscribers is not None:
            allow = bool(settings.section("webpush").get("allow_insecure_endpoints", False))
            population = csv_population(args.subscribers, allow_insecure=allow)
        else:
            population = default_population()
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            if (args.keep / "drill.sqlite").exists():
                raise DrillInputError(f"{args.keep}/drill.sqlite exists; keep each drill in its "
                                      "own directory")
    except QuakealertError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="quakealert-drill-"))
    try:
        report = asyncio.run(drill(
            reports, skipped, population, settings, store_path=workdir / "drill.sqlite",
            file=str(args.file), speed=args.speed, until=args.until,
            cap_dir=workdir / "cap" if args.keep else None, start=args.start))
    except DrillInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.html is not None:
        try:
            args.html.write_text(format_html(report, args.lang), encoding="utf-8")
        except OSError as err:
            print(f"error: cannot write {args.html}: {err.strerror or err}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        sys.stdout.write(format_text(report, args.lang))
    return 0
