"""A process that campaigns for leadership and prints each change (used by test_pg_leadership).

Usage: python tests/pg/leader_proc.py URL NAME; prints "leader NAME <monotonic>" on gain and
"follower NAME <monotonic>" on loss, flushed, until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

from quakealert.service.leadership import PgLeadership


def main() -> None:
    url, name = sys.argv[1], sys.argv[2]

    def show(leading: bool) -> None:
        print(f"{'leader' if leading else 'follower'} {name} {time.monotonic():.3f}", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(f"started {name} {time.monotonic():.3f}", flush=True)
        await PgLeadership(url, name=name, probe_s=0.5, campaign_s=0.5, on_change=show).run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
