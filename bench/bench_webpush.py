"""Fan one notice out to 100,000 Web Push subscribers on a local push service (127.0.0.1).

The receiver is a minimal aiohttp server answering 201, in its own process. "ours" is the
quakealert outbox (``Outbox.run``: claim, encrypt per recipient with a fresh ECDH key, send over
one ClientSession, mark). The baseline is a plain loop over pywebpush's own ``webpush()`` on a
sample of the same subscribers (default 2,000), extrapolated to the full count: the loop is
sequential, so its rate does not depend on the count.

    .venv/bin/python bench/bench_webpush.py [--subscribers 100000] [--sample 2000]

Prints ``key: value`` lines. Goals: >= 3,000 deliveries/s and >= 10x the pywebpush loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_RATE = 3000.0
GOAL_RATIO = 10.0


# -- the receiver (subprocess) ----------------------------------------------------------------


def serve(port: int, delay_ms: float = 0.0) -> None:
    """A push service stand-in: 201 for every POST (after ``delay_ms``, a stand-in for a real
    push service's round trip), GET /count for the number received."""
    from aiohttp import web

    count = 0

    async def handler(request: web.BaseRequest) -> web.Response:
        nonlocal count
        if request.method == "GET":
            return web.Response(text=str(count))
        await request.read()
        count += 1
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        return web.Response(status=201)

    async def main() -> None:
        server = web.Server(handler, access_log=None)
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(server, "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def received(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=10) as r:
        return int(r.read())


# -- setup ------------------------------------------------------------------------------------


def make_keys(n: int) -> list[tuple[str, str]]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from quakealert.store.subscribers import b64url

    out = []
    for _ in range(n):
        pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        out.append((b64url(pub), b64url(os.urandom(16))))
    return out


def make_notice():
    from quakealert.model import Message, Notice

    return Notice(
        id="bench-1", sequence_id="seq-maizhokunggar-2024", event_id="ev-1",
        kind="felt_guidance", msg_type="Alert", urgency="high", created_at=datetime.now(UTC),
        url="https://quakealert.example/n/bench-1",
        messages=(
            Message("zh", "西藏拉萨市墨竹工卡县发生4.5级地震",
                    "中国地震台网正式测定:11月07日04时19分在西藏拉萨市墨竹工卡县发生4.5级地震,"
                    "震源深度10千米。请保持冷静,到空旷安全处避险,注意余震。以官方发布为准。"),
            Message("bo", "ལྷ་ས་གྲོང་ཁྱེར་མལ་གྲོ་གུང་དཀར་རྫོང་ནང་ས་ཡོམ་ཆེ་ཚད་4.5",
                    "ས་ཡོམ་བྱུང་། སེམས་ཁྲལ་མ་བྱེད། བར་སྟོང་ཡངས་པོར་སོང་།"),
            Message("en", "M4.5 earthquake, Maizhokunggar County, Lhasa",
                    "Stay calm, move to open ground, beware of aftershocks."),
        ))


async def run_ours(db: Path, var: Path, concurrency: int, workers: int) -> dict[str, float]:
    import aiohttp

    from quakealert.channels.vapid import load_vapid
    from quakealert.channels.webpush import WebPushChannel
    from quakealert.config import Settings
    from quakealert.service.dispatch import Outbox, OutboxSettings
    from quakealert.store import outbox as ob
    from quakealert.store.sqlite import Store

    store = Store.open(db)
    keys = make_keys(1)
    vapid = load_vapid(Settings(store_path=db, var_dir=var))
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        channel = WebPushChannel(vapid, ttl_s=3600, crypto_workers=workers,
                                 allow_insecure=True)  # the bench push service is local
        box = Outbox(store, {"webpush": channel}, session,
                     settings=OutboxSettings(concurrency=concurrency, poll_s=0.2))
        if workers:  # start the pool's processes before the clock starts
            await asyncio.gather(*(channel._batcher.encrypt(  # type: ignore[union-attr]
                b"warm-up", keys[0][0], keys[0][1]) for _ in range(workers * 4)))
        t0, c0 = time.perf_counter(), time.process_time()
        await box.run(asyncio.Event(), until_empty=True)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        channel.close()
    counts = ob.counts(store.conn)
    store.close()
    return {"elapsed_s": elapsed, "cpu_s": cpu, "sent": counts.get("webpush", {}).get("sent", 0),
            "not_sent": sum(v for k, v in counts.get("webpush", {}).items() if k != "sent")}


def run_pywebpush(subs: list[tuple[str, str, str]], key_file: Path, payload: str) -> float:
    """Seconds for a plain loop of pywebpush.webpush() over ``subs`` (endpoint, p256dh, auth)."""
    import warnings

    from pywebpush import webpush

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    for endpoint, p256dh, auth in subs:
        webpush({"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": auth}}, data=payload,
                vapid_private_key=str(key_file),
                vapid_claims={"sub": "mailto:quakealert@localhost"}, ttl=3600,
                headers={"Urgency": "high", "Topic": "seq-maizhokunggar-2024"})
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--sample", type=int, default=2_000)
    p.add_argument("--concurrency", type=int, default=512)
    p.add_argument("--crypto-workers", type=int, default=os.cpu_count() or 1,
                   help="encryption processes (0 = encrypt on the event loop)")
    p.add_argument("--receiver-delay-ms", type=float, default=0.0,
                   help="answer each push after this long (0 = as fast as loopback allows)")
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.receiver_delay_ms)
        return

    import numpy as np

    from quakealert.channels.webpush import build_payload
    from quakealert.store import outbox as ob
    from quakealert.store.notices import save_notice
    from quakealert.store.sqlite import Store
    from quakealert.store.subscribers import NewSubscriber, Places, add_subscribers

    port = free_port()
    receiver = subprocess.Popen([sys.executable, __file__, "--serve", str(port),
                                 "--receiver-delay-ms", str(args.receiver_delay_ms)],
                                stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
        with tempfile.TemporaryDirectory() as tmp:
            db, var = Path(tmp) / "bench.sqlite", Path(tmp) / "var"
            t0 = time.perf_counter()
            keys = make_keys(args.subscribers)
            endpoint = f"http://127.0.0.1:{port}/push/"
            subs = [NewSubscriber(latitude=29.65, longitude=91.13, languages=("zh", "bo"),
                                  channel="webpush", target=f"{endpoint}{i}", p256dh=k, auth=a)
                    for i, (k, a) in enumerate(keys)]
            store = Store.open(db)
            no_places = Places((), np.empty(0), np.empty(0))  # area lookup is not benchmarked
            add_subscribers(store.conn, subs, now=datetime.now(UTC), places=no_places)
            notice = make_notice()
            save_notice(store.conn, notice, "released")
            ids = [r[0] for r in store.conn.execute("SELECT id FROM subscribers")]
            ob.enqueue_subscribers(store.conn, notice.id, ids, now=datetime.now(UTC))
            store.close()
            setup_s = time.perf_counter() - t0

            ours = asyncio.run(run_ours(db, var, args.concurrency, args.crypto_workers))
            got = received(port)
            rate = ours["sent"] / ours["elapsed_s"]

            sample = [(s.target, s.p256dh or "", s.auth or "") for s in subs[: args.sample]]
            payload = build_payload(notice, ("zh", "bo")).decode("utf-8")
            before = received(port)
            py_s = run_pywebpush(sample, var / "vapid_private.pem", payload)
            py_got = received(port) - before
            py_rate = len(sample) / py_s
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)

    print(f"subscribers: {args.subscribers}")
    print(f"cpus: {os.cpu_count()}")
    print(f"load_average_1m: {os.getloadavg()[0]:.2f}")
    print(f"receiver_delay_ms: {args.receiver_delay_ms:g}")
    print(f"setup_s: {setup_s:.1f}")
    print(f"concurrency: {args.concurrency}")
    print(f"crypto_workers: {args.crypto_workers}")
    print(f"ours_elapsed_s: {ours['elapsed_s']:.2f}")
    print(f"ours_cpu_s: {ours['cpu_s']:.2f}")
    print(f"ours_sent: {int(ours['sent'])}")
    print(f"ours_not_sent: {int(ours['not_sent'])}")
    print(f"receiver_got: {got}")
    print(f"ours_deliveries_per_s: {rate:.0f}")
    print(f"pywebpush_sample: {len(sample)}")
    print(f"pywebpush_sample_s: {py_s:.2f}")
    print(f"pywebpush_receiver_got: {py_got}")
    print(f"pywebpush_deliveries_per_s: {py_rate:.0f}")
    print(f"pywebpush_extrapolated_s: {args.subscribers / py_rate:.1f}  # sequential loop, "
          f"rate measured on the sample")
    print(f"ratio_vs_pywebpush_loop: {rate / py_rate:.1f}")
    print(f"goal_deliveries_per_s: {GOAL_RATE:.0f} met={rate >= GOAL_RATE}")
    print(f"goal_ratio: {GOAL_RATIO:.0f} met={rate / py_rate >= GOAL_RATIO}")


if __name__ == "__main__":
    main()
