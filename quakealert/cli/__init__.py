"""`quakealert` command line. Each subcommand lives in its own module with
``add_arguments(parser)`` and ``run(args) -> int``; this registry names them (STYLE: explicit
registry, no folder scanning). Only the chosen command's module is imported, so `--help` and
`--version` stay fast.

Exit status: 0 ok, 1 failure, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from quakealert import __version__
from quakealert.errors import ConfigError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("quakealert.cli.run", "run the daemon (default: offline replay of the 2024 scenario)"),
    "classify": ("quakealert.cli.classify", "group a catalogue file into typed sequences"),
    "subscribers": ("quakealert.cli.subscribers", "manage subscribers (CSV bulk import)"),
    "token": ("quakealert.cli.token", "create or revoke duty-staff API tokens"),
    "drill": ("quakealert.cli.drill", "replay a catalogue through the whole pipeline, as an exercise"),
    "store": ("quakealert.cli.store", "copy an SQLite store into PostgreSQL"),
    "config": ("quakealert.cli.config", "check a config file, show the effective config"),
    "messages": ("quakealert.cli.messages",
                 "Tibetan glossary review: PO export/import, docs/tibetan-review.md"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="quakealert",
        description="Earthquake alerts and public information: catalogue ingestion, sequences, "
                    "and calm zh/bo/en notices for residents.",
        epilog="exit status: 0 ok, 1 failure, 2 usage or configuration error")
    parser.add_argument("--version", action="version", version=f"quakealert {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is one), if any."""
    return next((a for a in argv if a in COMMANDS), None)


def setup_logging(verbose: bool, fmt: str | None = None, level: str | None = None) -> None:
    """Log lines on stderr: logfmt or JSON, journald-aware (quakealert.logs; `[log]` table)."""
    from quakealert.logs import setup

    setup(verbose=verbose, fmt=fmt, level=level)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command(argv)).parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args._module.run(args) or EXIT_OK)
    except ConfigError as err:
        print(f"quakealert: config: {err}", file=sys.stderr)
        return EXIT_USAGE
