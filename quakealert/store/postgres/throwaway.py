"""A throwaway PostgreSQL cluster for tests and benchmarks: ``initdb`` into a temporary
directory, a free port on 127.0.0.1, the unix socket inside that directory, removed on stop.

Uses the Debian binaries (``initdb``/``pg_ctl`` on PATH, else /usr/lib/postgresql/*/bin).
initdb refuses to run as root, so as root the cluster runs as the ``postgres`` user (created by
Debian's ``postgresql`` package) or ``nobody``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_DEBIAN_BIN = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"


def find_bin(name: str) -> str | None:
    """Path of a PostgreSQL program, or None when PostgreSQL is not installed."""
    found = shutil.which(name)
    if found:
        return found
    if _DEBIAN_BIN.is_dir():
        for version in sorted(_DEBIAN_BIN.iterdir(), reverse=True):
            candidate = version / "bin" / name
            if candidate.is_file():
                return str(candidate)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root and neither a postgres nor a nobody user exists")


@dataclass
class Cluster:
    """A running throwaway cluster; ``url(db)`` is a libpq URL to one of its databases."""

    root: Path
    port: int
    pg_ctl: str

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        try:
            subprocess.run([*_run_as(), self.pg_ctl, "-D", str(self.data_dir), "-m", "immediate",
                            "-w", "stop"], capture_output=True, timeout=60, check=False)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""


def start(*, max_connections: int = 100) -> Cluster:
    """initdb and start a cluster; raises FileNotFoundError when initdb is not installed."""
    initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise FileNotFoundError("initdb not found")
    prefix = _run_as()
    root = Path(tempfile.mkdtemp(prefix="quakealert-pg-"))
    if prefix:
        user = pwd.getpwnam(prefix[2])
        os.chown(root, user.pw_uid, user.pw_gid)
    data = root / "data"
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, timeout=120, check=True)
        # A port can be taken between free_port() and the bind: try a few.
        for _ in range(5):
            port = free_port()
            opts = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
                    f" -c max_connections={max_connections} -c fsync=off"
                    " -c synchronous_commit=off -c full_page_writes=off")
            proc = subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-l", str(root / "postgres.log"), "-o", opts,
                 "-w", "-t", "60", "start"], capture_output=True, timeout=90, check=False)
            if proc.returncode == 0:
                return Cluster(root, port, pg_ctl)
        raise RuntimeError(f"pg_ctl start failed: {proc.stderr.decode(errors='replace')}\n"
                           f"{(root / 'postgres.log').read_text(errors='replace')}")
    except BaseException:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(root, ignore_errors=True)
        raise
