"""`quakealert store copy --from sqlite:PATH --to postgresql://…`: move a store to PostgreSQL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from quakealert.store.transfer import (
    DEFAULT_BATCH,
    CopyError,
    TargetFailed,
    copy_to_postgres,
    mask,
)


def _sqlite_source(text: str) -> Path:
    if not text.startswith("sqlite:") or len(text) == len("sqlite:"):
        raise argparse.ArgumentTypeError(f"expected sqlite:PATH, not {text!r}")
    return Path(text.removeprefix("sqlite:"))


def _pg_target(text: str) -> str:
    if not text.startswith(("postgresql://", "postgres://")):
        raise argparse.ArgumentTypeError("expected a postgresql:// URL")
    return text


def _batch(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1_000_000:
        raise argparse.ArgumentTypeError(f"batch must be 1..1000000, not {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="store_command", required=True)
    copy = sub.add_parser(
        "copy", help="copy every table of an SQLite store into PostgreSQL (idempotent; verifies"
                     " row counts)")
    copy.add_argument("--from", dest="source", type=_sqlite_source, required=True,
                      metavar="sqlite:PATH", help="the SQLite store (opened read-only)")
    copy.add_argument("--to", dest="target", type=_pg_target, required=True,
                      metavar="postgresql://USER@HOST:PORT/DB",
                      help="the PostgreSQL database (migrated first; the password may come from"
                           " PGPASSWORD or ~/.pgpass)")
    copy.add_argument("--batch", type=_batch, default=DEFAULT_BATCH,
                      help=f"rows per transaction (default {DEFAULT_BATCH})")


def run(args: argparse.Namespace) -> int:
    try:
        results = copy_to_postgres(args.source, args.target, batch=args.batch)
    except CopyError as err:
        print(f"quakealert store copy: {err}", file=sys.stderr)
        return 2
    except TargetFailed as err:
        print(f"quakealert store copy: {err}", file=sys.stderr)
        return 1
    width = max(len(r.table) for r in results)
    for r in results:
        mark = "ok" if r.ok else "MISMATCH"
        print(f"{r.table:<{width}}  sqlite {r.source_rows:>9}  postgresql {r.target_rows:>9}"
              f"  added {r.added:>9}  {mark}")
    bad = [r.table for r in results if not r.ok]
    if bad:
        print(f"quakealert store copy: row counts differ in {', '.join(bad)} (was the target"
              " database empty, or a copy of this same store?)", file=sys.stderr)
        return 1
    print(f"copied {args.source} to {mask(args.target)}: {len(results)} tables verified",
          file=sys.stderr)
    return 0
