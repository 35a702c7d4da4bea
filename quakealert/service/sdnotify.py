"""systemd's readiness and watchdog protocol (sd_notify(3)): a datagram to $NOTIFY_SOCKET.

The unit is `Type=notify` with `WatchdogSec=`: the daemon says READY=1 once the API listens and
the sources are scheduled, WATCHDOG=1 from the event loop at half the watchdog interval (a
blocked loop stops the pings and systemd restarts the service), and STOPPING=1 while it drains.
Outside systemd (no $NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. "READY=1") to the service manager; False when there is none."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket: the name starts with a NUL byte
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("NOTIFY_SOCKET is neither a path nor an abstract socket; not notifying")
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as err:
        log.warning("sd_notify failed: %s", err)
        return False
    return True


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd asked for (WATCHDOG_USEC), if it is meant for this process."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1_000_000


async def keep_alive(stop: asyncio.Event, interval_s: float,
                     env: Mapping[str, str] | None = None) -> None:
    """WATCHDOG=1 every ``interval_s / 2`` until ``stop`` is set."""
    while not stop.is_set():
        notify("WATCHDOG=1", env)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s / 2)
        except TimeoutError:
            pass
