"""The fault suite's harness: a hostile catalogue and receiver server on 127.0.0.1, and the daemon
as users run it (`python -m quakealert run --config ...` in a subprocess of this worktree)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Self

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import load_fixture

REPO = Path(__file__).resolve().parents[2]
USGS = json.loads(load_fixture("usgs/usgs-geojson-all_hour-2017-12-03.geojson"))
FDSN_TEXT = load_fixture("fdsn/fdsn-text-usgs-rows.txt")
CHUNK = b"x" * (1 << 20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def usgs_feed(features: list[Any]) -> bytes:
    doc = copy.deepcopy(USGS)
    doc["features"] = features
    return json.dumps(doc).encode()


def good_features() -> list[dict[str, Any]]:
    return copy.deepcopy(USGS["features"])


def synthetic_features(n: int, prefix: str) -> list[dict[str, Any]]:
    """``n`` distinct, valid features (different ids and places in time) from the recorded one."""
    out = []
    for i in range(n):
        f = copy.deepcopy(USGS["features"][0])
        f["id"] = f"{prefix}{i:05d}"
        f["properties"]["ids"] = f",{f['id']},"
        f["properties"]["time"] -= (i + 1) * 3_600_000
        f["geometry"]["coordinates"][0] += (i % 50) * 0.5 - 12
        out.append(f)
    return out


class Upstream:
    """The hostile side: a USGS-style feed and an fdsnws node (the well-behaved other source),
    a 300 MB catalogue body, and webhook receivers that answer 204 or stream 300 MB."""

    def __init__(self) -> None:
        self.usgs_body = usgs_feed(good_features())
        self.hits: Counter[str] = Counter()
        self.flood_sent = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def usgs(self, request: web.Request) -> web.Response:
        self.hits["usgs"] += 1
        return web.Response(body=self.usgs_body, content_type="application/geo+json")

    async def fdsn(self, request: web.Request) -> web.Response:
        self.hits["fdsn"] += 1
        return web.Response(body=FDSN_TEXT, content_type="text/plain")

    async def flood(self, request: web.Request) -> web.StreamResponse:
        """300 MB, streamed lazily (the same 1 MB chunk 300 times)."""
        self.hits[request.path] += 1
        await request.read()
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            for _ in range(300):
                await resp.write(CHUNK)
                self.flood_sent += len(CHUNK)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    async def hook(self, request: web.Request) -> web.Response:
        self.hits[request.path] += 1
        await request.read()
        return web.Response(status=204)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/usgs/feed.geojson", self.usgs)
        app.router.add_get("/fdsn/query", self.fdsn)
        app.router.add_route("*", "/flood/{tail:.*}", self.flood)
        app.router.add_post("/hook/{name}", self.hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def source_toml(name: str, kind: str, url: str, **extra: Any) -> str:
    lines = [(f'[[sources]]\nname = "{name}"\nkind = "{kind}"\nurl = "{url}"\n'
             "interval_s = 1\njitter_s = 0\ntimeout_s = 5\n")]
    lines += [f"{k} = {json.dumps(v)}\n" for k, v in extra.items()]
    return "".join(lines)


class Daemon:
    """`quakealert run` in a subprocess; start() waits for /healthz, stop() sends SIGTERM."""

    def __init__(self, tmp: Path, store_path: Path, sources: str, *, extra: str = "") -> None:
        self.tmp = tmp
        self.port = free_port()
        self.config = tmp / "quakealert.toml"
        self.config.write_text(
            f'[store]\npath = "{store_path}"\nvar_dir = "{tmp / "var"}"\n\n'
            f'[api]\nhost = "127.0.0.1"\nport = {self.port}\n\n'
            f'[ratelimit]\nenabled = false\n\n{sources}\n{extra}\n')
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "daemon.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        with self.log.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "quakealert", "run", "--config", str(self.config)],
                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
        return self.proc

    async def start(self, timeout_s: float = 60.0) -> None:
        self.spawn()
        await self.wait_health(lambda b: True, timeout_s=timeout_s)

    async def health(self, timeout_s: float = 10.0) -> tuple[dict[str, Any], float]:
        """The /healthz body and how long it took to answer."""
        t0 = time.perf_counter()
        async with aiohttp.ClientSession() as s, s.get(
                f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
            assert r.status == 200
            return await r.json(), time.perf_counter() - t0

    async def wait_health(self, check: Callable[[dict[str, Any]], bool],
                          timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.tail()}")
            try:
                last, _ = await self.health(timeout_s=5)
                if check(last):
                    return last
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.25)
        raise AssertionError(f"/healthz never satisfied the check; last: {last}\n{self.tail()}")

    def source(self, body: dict[str, Any], name: str) -> dict[str, Any]:
        return next(s for s in body["sources"] if s["name"] == name)

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM and wait; the exit status (killed and failed if it does not stop)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"daemon ignored SIGTERM: {self.tail()}") from None
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    async with Upstream() as up:
        yield up


def read_db(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from the daemon's store, read on a connection of our own."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
