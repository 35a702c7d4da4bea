"""A delivery process on the PostgreSQL outbox (used by test_pg_outbox_failover): claim a batch
with a short lease, POST each row to its target with its delivery id, mark the batch; reclaim
expired leases as it goes; exit when nothing is pending or in flight.

Usage: python tests/pg/deliver_proc.py URL LEASE_S BATCH"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

import aiohttp
import psycopg

from quakealert.store.postgres import outbox as ob


async def main() -> None:
    url, lease_s, batch = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    conn = psycopg.connect(url, autocommit=True)
    waker = ob.OutboxWaker(url)
    async with aiohttp.ClientSession() as http:

        async def post(row: ob.OutboxRow) -> tuple[int, str, int | None, str | None, None]:
            async with http.post(row.target, data=b"{}",
                                 headers={"X-Delivery-Id": str(row.id)}) as resp:
                await resp.read()
                return (row.id, "sent", resp.status, None, None)

        while True:
            now = datetime.now(UTC)
            ob.recover(conn, now)
            rows = ob.claim(conn, batch, now, lease_s=lease_s)
            if rows:
                print(f"claimed {len(rows)}", flush=True)
                marks = await asyncio.gather(*(post(r) for r in rows))
                ob.finish_many(conn, marks, at=datetime.now(UTC))
                continue
            left = ob.counts(conn).get("webhook", {})
            if not left.get("pending") and not left.get("in_flight"):
                break
            await waker.wait(0.2)
    await waker.close()
    conn.close()


if __name__ == "__main__":
    asyncio.run(main())
