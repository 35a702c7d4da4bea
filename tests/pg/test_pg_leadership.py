"""Leadership on a real PostgreSQL: exactly one leads; the other takes over when the leader's
session is terminated or its process is killed."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from quakealert.service.leadership import PgLeadership, SoloLeadership, holds_leadership

ROOT = Path(__file__).resolve().parents[2]
TAKEOVER_LIMIT_S = 15.0


async def _until(predicate, timeout_s: float) -> float:
    """Seconds until predicate() holds (fails the test after timeout_s)."""
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < timeout_s, "condition not reached in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def test_solo_leadership_leads_until_stopped():
    """On SQLite the one instance leads from start to stop, with a callback on each change."""
    changes: list[bool] = []
    lead = SoloLeadership(on_change=changes.append)
    stop = asyncio.Event()
    task = asyncio.create_task(lead.run(stop))
    await _until(lambda: lead.is_leader, 2)
    stop.set()
    await task
    assert changes == [True, False] and not lead.is_leader


async def test_exactly_one_leads_and_the_other_takes_over(pg_url, capsys):
    """Two candidates: one leads, never both; pg_terminate_backend of the leader's session makes
    the old leader stop at once and the other lead within 15 s; the lock is fenced by pid."""
    changes: dict[str, list[bool]] = {"a": [], "b": []}
    a = PgLeadership(pg_url, name="a", probe_s=0.5, campaign_s=0.5,
                     on_change=changes["a"].append)
    b = PgLeadership(pg_url, name="b", probe_s=0.5, campaign_s=0.5,
                     on_change=changes["b"].append)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(x.run(stop)) for x in (a, b)]
    try:
        await _until(lambda: a.is_leader or b.is_leader, 10)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:  # never two leaders
            assert a.is_leader + b.is_leader == 1
            await asyncio.sleep(0.02)
        leader, follower = (a, b) if a.is_leader else (b, a)
        pid = leader.backend_pid
        assert pid is not None
        with psycopg.connect(pg_url, autocommit=True) as conn:
            assert holds_leadership(conn, pid)
            t_kill = time.monotonic()
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            lost_s = await _until(lambda: not leader.is_leader, 5)
            await _until(lambda: follower.is_leader, TAKEOVER_LIMIT_S)
            takeover_s = time.monotonic() - t_kill
            assert not holds_leadership(conn, pid)
            assert follower.backend_pid is not None and holds_leadership(conn, follower.backend_pid)
        with capsys.disabled():
            print(f"\n  leadership: loss seen after {lost_s:.3f} s, "
                  f"takeover after pg_terminate_backend {takeover_s:.3f} s")
        await asyncio.sleep(1.5)  # the old leader campaigns again and stays a follower
        assert follower.is_leader and not leader.is_leader
        assert changes[leader.name][:2] == [True, False]
        assert changes[follower.name] == [True]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    assert not a.is_leader and not b.is_leader


async def test_unreachable_database_never_leads():
    """With the database unreachable the candidate stays a follower and keeps trying."""
    from quakealert.store.postgres.throwaway import free_port

    lead = PgLeadership(f"postgresql://x@127.0.0.1:{free_port()}/x", probe_timeout_s=0.5,
                        campaign_s=0.1)
    stop = asyncio.Event()
    task = asyncio.create_task(lead.run(stop))
    await asyncio.sleep(1.0)
    assert not lead.is_leader
    stop.set()
    await asyncio.wait_for(task, 5)


def _spawn(url: str, name: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "tests/pg/leader_proc.py"), url, name],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env=env)


def _read_until(procs, want: str, timeout_s: float) -> tuple[str, float]:
    """Read the processes' lines until one starts with ``want``; returns (name, monotonic)."""
    sel = selectors.DefaultSelector()
    for p in procs:
        sel.register(p.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                line = key.fileobj.readline()
                if line.startswith(want + " "):
                    _, name, at = line.split()
                    return name, float(at)
        raise AssertionError(f"no {want!r} line within {timeout_s} s")
    finally:
        sel.close()


def test_sigkill_of_the_leader_process_hands_over(pg_url, capsys):
    """Two real processes: one leads; SIGKILL it and the other leads within 15 s."""
    procs = {name: _spawn(pg_url, name) for name in ("p1", "p2")}
    try:
        first, _ = _read_until(procs.values(), "leader", 30)
        other = "p2" if first == "p1" else "p1"
        time.sleep(1.0)  # the follower has campaigned at least once and lost
        t_kill = time.monotonic()
        procs[first].send_signal(signal.SIGKILL)
        procs[first].wait(5)
        name, at = _read_until([procs[other]], "leader", TAKEOVER_LIMIT_S)
        assert name == other
        takeover_s = at - t_kill
        assert 0 <= takeover_s < TAKEOVER_LIMIT_S
        with capsys.disabled():
            print(f"\n  leadership: takeover after SIGKILL of the leader process {takeover_s:.3f} s")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            p.stdout.close()


def test_a_stopped_leader_loses_the_lock(pg_url, capsys):
    """SIGSTOP the leader (its socket stays open, as with a stuck event loop): the server ends its
    idle session, the other process leads within 15 s, and the stopped one, resumed, reports
    that it no longer leads."""
    procs = {name: _spawn(pg_url, name) for name in ("s1", "s2")}
    try:
        first, _ = _read_until(procs.values(), "leader", 30)
        other = "s2" if first == "s1" else "s1"
        time.sleep(1.0)
        t_stop = time.monotonic()
        procs[first].send_signal(signal.SIGSTOP)
        name, at = _read_until([procs[other]], "leader", TAKEOVER_LIMIT_S)
        assert name == other
        takeover_s = at - t_stop
        procs[first].send_signal(signal.SIGCONT)
        name, _ = _read_until([procs[first]], "follower", 10)
        assert name == first
        with capsys.disabled():
            print(f"\n  leadership: takeover after SIGSTOP of the leader process {takeover_s:.3f} s")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            p.stdout.close()


def test_idle_timeout_must_cover_several_probes():
    """A server-side idle timeout shorter than three probes would end healthy leaders."""
    with pytest.raises(ValueError):
        PgLeadership("postgresql://x@127.0.0.1/x", probe_s=2.0, idle_timeout_s=5.0)
