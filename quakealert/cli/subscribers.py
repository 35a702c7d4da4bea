"""`quakealert subscribers import FILE.csv` (the office's bulk import) and `... count`.

CSV columns: latitude, longitude, languages ("zh;bo"), channel (webpush | webhook),
url or endpoint, p256dh, auth (Web Push keys), min_intensity, secret (webhook, optional).
Bad rows are reported with their line numbers; the good ones are imported all the same.
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quakealert.config import load_settings
from quakealert.errors import InvalidRequest, QuakealertError
from quakealert.store import open_store
from quakealert.store.subscribers import NewSubscriber, parse_subscriber

COLUMNS = ("latitude", "longitude", "languages", "channel", "url", "endpoint", "p256dh", "auth",
           "min_intensity", "secret")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    imp = sub.add_parser("import", help="add subscribers from a CSV file")
    imp.add_argument("file", type=Path, help="CSV with a header row")
    imp.add_argument("--config", type=Path, default=None, help="TOML config (default: embedded)")
    cnt = sub.add_parser("count", help="subscriber counts by channel and area (never places)")
    cnt.add_argument("--config", type=Path, default=None, help="TOML config (default: embedded)")


def row_to_request(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the JSON body the API takes (empty cells are absent)."""
    cells = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
    unknown = sorted(k for k, v in cells.items() if k not in COLUMNS and v)
    if unknown:
        raise InvalidRequest(f"unknown column {unknown[0]!r}")
    data: dict[str, Any] = {k: cells[k] for k in ("latitude", "longitude", "languages", "channel",
                                                  "min_intensity", "secret") if cells.get(k)}
    target = cells.get("endpoint") or cells.get("url")
    if data.get("channel") == "webpush":
        data["subscription"] = {"endpoint": target,
                                "keys": {"p256dh": cells.get("p256dh"), "auth": cells.get("auth")}}
    elif target:
        data["url"] = target
    return data


def parse_csv(text: str, *, allow_insecure: bool) -> tuple[list[tuple[int, NewSubscriber]],
                                                            list[str]]:
    """Good rows (with their line numbers) and one "line N: reason" per bad row."""
    reader = csv.DictReader(text.splitlines())
    good, bad = [], []
    if not reader.fieldnames or not {"latitude", "longitude", "channel"} <= {
            f.strip().lower() for f in reader.fieldnames}:
        return [], ["line 1: header must name at least latitude, longitude, channel"]
    for row in reader:
        line = reader.line_num
        if None in row:
            bad.append(f"line {line}: more cells than header columns")
            continue
        try:
            good.append((line, parse_subscriber(row_to_request(row),
                                                allow_insecure=allow_insecure)))
        except InvalidRequest as err:
            bad.append(f"line {line}: {err}")
    return good, bad


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except QuakealertError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    store = open_store(settings)
    try:
        if args.action == "count":
            by_channel = store.subscribers.count_by_channel()
            print(f"total: {sum(by_channel.values())}")
            for name, n in by_channel.items():
                print(f"channel.{name}: {n}")
            for area, n in store.subscribers.count_by_area().items():
                print(f"area.{area}: {n}")
            return 0
        try:
            text = args.file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as err:
            print(f"error: cannot read {args.file}: {err}", file=sys.stderr)
            return 2
        allow = bool(settings.section("webpush").get("allow_insecure_endpoints", False))
        good, bad = parse_csv(text, allow_insecure=allow)
        created = store.subscribers.add_subscribers([s for _, s in good],
                                                    now=datetime.now(UTC))
        for (line, _), c in zip(good, created):
            if c.secret is not None:  # the office needs it to configure its gateway
                print(f"line {line}: id={c.id} secret={c.secret}")
        for msg in bad:
            print(msg, file=sys.stderr)
        print(f"imported: {len(created)}")
        print(f"rejected: {len(bad)}")
        return 1 if bad else 0
    finally:
        store.close()
