"""systemd: the sd_notify protocol against a local datagram socket, and the hardened unit."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from quakealert.service import sdnotify

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "deploy" / "quakealert.service"
# the single-host unit, and the two-host example's (hardened the same way)
UNITS = [UNIT, *sorted((REPO / "deploy" / "two-host").glob("quakealert-*.service"))]
UNIT_IDS = [u.name for u in UNITS]


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A bound unix datagram socket, as systemd holds one, and the env that names it."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(60)
    yield sock, {"NOTIFY_SOCKET": str(path)}
    sock.close()


def test_notify_sends_one_datagram(notify_socket: tuple[socket.socket, dict[str, str]]) -> None:
    """READY=1 (with a status line) arrives as one datagram on $NOTIFY_SOCKET."""
    sock, env = notify_socket
    assert sdnotify.notify("READY=1\nSTATUS=serving", env)
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"


def test_notify_reaches_an_abstract_socket() -> None:
    """'@name' means the abstract namespace (a leading NUL byte), as systemd may pass it."""
    name = f"quakealert-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert sdnotify.notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(64) == b"WATCHDOG=1"


def test_without_systemd_nothing_is_sent(tmp_path: Path) -> None:
    """No $NOTIFY_SOCKET (or a dead one): notify reports False and never raises."""
    assert not sdnotify.notify("READY=1", {})
    assert not sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert not sdnotify.notify("READY=1", {"NOTIFY_SOCKET": "relative"})


def test_watchdog_interval_is_for_this_process_only() -> None:
    """WATCHDOG_USEC in seconds; ignored when WATCHDOG_PID names another process."""
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert sdnotify.watchdog_interval_s(
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert sdnotify.watchdog_interval_s(
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert sdnotify.watchdog_interval_s({}) is None


async def test_keep_alive_pings_until_stopped(
        notify_socket: tuple[socket.socket, dict[str, str]]) -> None:
    """WATCHDOG=1 at half the interval while running; nothing after stop."""
    sock, env = notify_socket
    sock.setblocking(False)
    stop = asyncio.Event()
    task = asyncio.create_task(sdnotify.keep_alive(stop, 0.2, env))
    await asyncio.sleep(0.35)
    stop.set()
    await task
    pings = []
    while True:
        try:
            pings.append(sock.recv(64))
        except BlockingIOError:
            break
    assert pings and set(pings) == {b"WATCHDOG=1"} and 2 <= len(pings) <= 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_daemon_says_ready_pings_and_stops(
        tmp_path: Path, notify_socket: tuple[socket.socket, dict[str, str]]) -> None:
    """The real daemon: READY=1 once it listens, WATCHDOG=1 pings, STOPPING=1 on SIGTERM."""
    sock, env = notify_socket
    port = _free_port()
    cfg = tmp_path / "q.toml"
    cfg.write_text(f'[store]\nvar_dir = "{tmp_path / "state"}"\n[api]\nport = {port}\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "quakealert", "run", "--config", str(cfg)], cwd=REPO,
        env={**os.environ, **env, "WATCHDOG_USEC": "2000000"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first = sock.recv(4096).decode()
        assert first.startswith("READY=1\n") and f":{port}" in first
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # READY came after the API listens
        assert sock.recv(64) == b"WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        rest = []
        while b"STOPPING=1" not in rest:
            rest.append(sock.recv(64))
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


# ---------------------------------------------------------------- the unit file


def _directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line.strip())
        if m:
            out.setdefault(m.group(1), []).append(m.group(2))
    return out


@pytest.mark.parametrize("unit", UNITS, ids=UNIT_IDS)
def test_unit_is_hardened_and_notifies(unit: Path) -> None:
    """The hardening the issue asks for is in each unit, whatever systemd-analyze is present."""
    d = _directives(unit.read_text())
    assert d["Type"] == ["notify"] and d["WatchdogSec"]
    assert d["DynamicUser"] == ["yes"]
    assert d["StateDirectory"] == ["quakealert"] and d["LogsDirectory"] == ["quakealert"]
    for key, value in [("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"), ("UMask", "0077"),
                       ("CapabilityBoundingSet", "")]:
        assert d[key] == [value], key
    assert d["SystemCallFilter"][0] == "@system-service"
    assert d["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert any(c.startswith("vapid_private.pem:") for c in d["LoadCredential"])
    config = Path(d["ExecStart"][0].split("--config ")[1])
    assert config.name == ("quakealert.toml" if unit == UNIT else
                           f"host-{unit.stem[-1]}.toml")


def test_two_host_units_take_the_database_password_as_a_credential() -> None:
    """Two hosts: the same hardening as the single-host unit (all but the config file and the
    credentials are identical), and the PostgreSQL password as a credential that libpq reads
    (PGPASSFILE in the credentials directory), never in the environment or the config."""
    single = _directives(UNIT.read_text())
    for unit in UNITS[1:]:
        d = _directives(unit.read_text())
        assert "pgpass:/etc/quakealert/pgpass" in d["LoadCredential"]
        assert "PGPASSFILE=%d/pgpass" in d["Environment"]
        assert not any("PASSWORD" in e for e in d["Environment"])
        same = {k: v for k, v in d.items() if k not in (
            "ExecStart", "Description", "LoadCredential", "Environment")}
        assert same == {k: v for k, v in single.items() if k not in (
            "ExecStart", "Description", "LoadCredential", "Environment")}
    for name in ("host-a.toml", "host-b.toml"):
        config = tomllib.loads((REPO / "deploy" / "two-host" / name).read_text())
        user = config["store"]["url"].split("//")[1].split("@")[0]
        assert user == "quakealert"  # no password in the URL
        assert config["webpush"]["vapid_private_key_file"].startswith("$CREDENTIALS_DIRECTORY/")


def test_deploy_config_keeps_state_under_var_lib() -> None:
    """The deploy example puts the store in /var/lib/quakealert (the unit's StateDirectory)."""
    from quakealert.config import load_settings

    settings = load_settings(REPO / "deploy" / "quakealert.toml")
    assert settings.store_path.parent == Path("/var/lib/quakealert")
    assert settings.var_dir == Path("/var/lib/quakealert")


def _analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here (apt-get install systemd)")
    return tool


def _unit_copy(tmp_path: Path, unit: Path = UNIT) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it)."""
    text = unit.read_text()
    exe = shutil.which("quakealert") or sys.executable
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={exe}", text, flags=re.MULTILINE)
    copy = tmp_path / unit.name
    copy.write_text(text)
    return copy


@pytest.mark.parametrize("unit", UNITS, ids=UNIT_IDS)
def test_systemd_analyze_verify_is_clean(tmp_path: Path, unit: Path) -> None:
    """`systemd-analyze verify` reports nothing about the unit."""
    tool = _analyze()
    unit = _unit_copy(tmp_path, unit)
    run = subprocess.run([tool, "verify", str(unit)], check=False, capture_output=True,
                         text=True, timeout=120)
    ours = [line for line in (run.stdout + run.stderr).splitlines() if unit.name in line]
    print(f"systemd-analyze verify: rc={run.returncode}, lines about the unit: {ours}")
    assert run.returncode == 0 and ours == [], run.stderr


@pytest.mark.parametrize("unit", UNITS, ids=UNIT_IDS)
def test_systemd_analyze_security_score_at_most_2(tmp_path: Path, unit: Path) -> None:
    """`systemd-analyze security --offline=true` rates the unit 2.0 or better (lower is safer)."""
    tool = _analyze()
    unit = _unit_copy(tmp_path, unit)
    run = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(unit)],
                         check=False, capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\S+)", run.stdout + run.stderr)
    assert m, run.stdout + run.stderr
    print(f"systemd-analyze security: {m.group(1)} {m.group(2)}")
    assert float(m.group(1)) <= 2.0
