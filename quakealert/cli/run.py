"""`quakealert run`: start the daemon (default: the offline replay of the bundled scenario)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import replace
from pathlib import Path

from quakealert.config import load_settings
from quakealert.errors import StoreCorrupt

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML config (default: the offline replay)")
    parser.add_argument("--host", help="override [api] host")
    parser.add_argument("--port", type=int, help="override [api] port")



def reset_demo_store(path: Path) -> None:
    """The embedded default replays the same recorded scenario on every start: begin from an
    empty store so the demo resident sees the notices again (a real config keeps its store)."""
    for suffix in ("", "-wal", "-shm"):
        stale = Path(f"{path}{suffix}")
        if stale.exists():
            stale.unlink()
    log.info("demo: starting from an empty store at %s (embedded offline default)", path)



def run(args: argparse.Namespace) -> int:
    from quakealert.cli import setup_logging
    from quakealert.service.daemon import main_async  # imported here: `--help` stays fast

    settings = load_settings(args.config)  # ConfigError: one line on stderr, exit 2 (cli.main)
    log_table = settings.section("log")
    setup_logging(args.verbose, log_table.get("format"), log_table.get("level"))
    if args.config is None:
        reset_demo_store(settings.store_path)
    if args.host or args.port:
        settings = replace(settings, api_host=args.host or settings.api_host,
                           api_port=args.port or settings.api_port)
    try:
        asyncio.run(main_async(settings))  # a subsystem's ConfigError: exit 2 too (cli.main)
    except StoreCorrupt as err:  # Restart=on-failure must not loop on a damaged file
        log.error("store: %s", err)
        return 2
    return 0
