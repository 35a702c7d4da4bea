"""`quakealert` command line. Each subcommand lives in its own module with
``add_arguments(parser)`` and ``run(args) -> int``; this registry names them (STYLE: explicit
registry, no folder scanning)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("quakealert.cli.run", "run the daemon (default: offline replay of the 2024 scenario)"),
    "classify": ("quakealert.cli.classify", "group a catalogue file into typed sequences"),
    "subscribers": ("quakealert.cli.subscribers", "manage subscribers (CSV bulk import)"),
    "token": ("quakealert.cli.token", "create or revoke duty-staff API tokens"),
    "drill": ("quakealert.cli.drill", "replay a catalogue through the whole pipeline, as an exercise"),
    "store": ("quakealert.cli.store", "copy an SQLite store into PostgreSQL"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quakealert",
        description="Earthquake alerts and public information: catalogue ingestion, sequences, "
                    "and calm zh/bo/en notices for residents.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def setup_logging(verbose: bool) -> None:
    """key=value lines on stderr: greppable by source and event id (see daemon logs)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )
    # one line per job run drowns the daemon's own log; failures still show as warnings
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return int(args._module.run(args) or 0)
