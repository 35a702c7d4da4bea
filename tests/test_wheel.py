"""The built wheel runs anywhere: data ships inside it, and the CLI follows its conventions."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCEDC = REPO / "tests" / "fixtures" / "catalogs" / "scedc-ridgecrest-2019.csv"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip wheel .` of this checkout (no network: the build backend of this environment)."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(dist), str(REPO)],
                   check=True, timeout=300, capture_output=True)
    [built] = dist.glob("quakealert-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new venv with only the wheel installed; third-party packages are borrowed from this
    environment through a .pth line (no download; this checkout is not on its path)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", str(wheel)], check=True, timeout=300, capture_output=True)
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([str(python), "-c", code], check=True, capture_output=True,
                               text=True).stdout.strip())
    (site / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield venv


def run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STATE_DIRECTORY")}
    env["XDG_STATE_HOME"] = str(cwd / "state")
    return subprocess.run([str(venv / "bin" / "quakealert"), *args], check=False, cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)


def test_wheel_holds_messages_catalogs_and_the_scenario(wheel: Path) -> None:
    """messages/ and catalogs/ (with the bundled scenario) are inside the package, and the
    licence travels in the metadata (PEP 639)."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("quakealert/messages/glossary/bo.toml", "quakealert/messages/places.toml",
                   "quakealert/messages/templates/felt_guidance.j2",
                   "quakealert/catalogs/cenc.toml",
                   "quakealert/catalogs/scenarios/cenc-lhasa-300km-2015-2025.csv",
                   "quakealert/store/schema/001_reports_events.sql"):
        assert needed in names, needed
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "License-Expression: AGPL-3.0-or-later" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "py-vapid" not in text


@pytest.mark.slow
def test_installed_wheel_works_from_another_folder(installed: Path, tmp_path: Path) -> None:
    """--version, classify and a bad config behave from a folder far from the checkout."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(installed / "bin" / "python"), "-c",
                            "import quakealert; print(quakealert.__file__)"], cwd=elsewhere,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed)), where
    version = run(installed, "--version", cwd=elsewhere)
    from importlib.metadata import version as installed_version

    assert version.returncode == 0
    assert version.stdout.strip() == f"quakealert {installed_version('quakealert')}"
    classify = run(installed, "classify", str(SCEDC), cwd=elsewhere)
    assert classify.returncode == 0, classify.stderr
    assert "7.1" in classify.stdout
    bad = elsewhere / "bad.toml"
    bad.write_text('[api]\nport = "eighty"\n')
    failed = run(installed, "run", "--config", str(bad), cwd=elsewhere)
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1 and "bad.toml: api.port: expected int" in failed.stderr
    shown = run(installed, "config", "show", cwd=elsewhere)
    assert 'host = "127.0.0.1"\nport = 8080\n' in shown.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_installed_wheel_serves_the_bundled_scenario(installed: Path, tmp_path: Path) -> None:
    """`quakealert run` with no config, from another folder, serves the replayed quakes (the
    default port is 8080; a free one is used here so a running demo does not collide)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STATE_DIRECTORY")}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    proc = subprocess.Popen([str(installed / "bin" / "quakealert"), "run", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    events: list[object] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not events:
            time.sleep(1)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/v1/events?limit=100", timeout=5) as resp:
                    events = json.load(resp)["events"]
            except OSError:
                continue
        assert events, "no events served within 120 s"
        assert (tmp_path / "state" / "quakealert" / "demo.sqlite").exists()
        assert not (tmp_path / "var").exists()  # nothing written to the working folder
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == 0
