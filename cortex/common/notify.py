"""systemd notification over $NOTIFY_SOCKET (Type=notify), shared by both daemons.

A unit with `Type=notify` waits for READY=1 before it counts the daemon as
started, and `WatchdogSec=` restarts it unless WATCHDOG=1 arrives in time; the
protocol is one datagram per message, so a plain socket is all it takes. The
watchdog pings come from a task on the daemon's event loop, so a loop that is
wedged stops pinging and systemd restarts the process. A socket that is missing
or gone never raises: the daemon keeps serving and says so once in its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator

from cortex.common.background import running_beside

log = logging.getLogger(__name__)
_failing = False  # the last send failed (logged once, not once a ping)


def notify(message: str) -> bool:
    """Send one `KEY=value` message; False when not run under systemd (or it failed)."""
    global _failing
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        if not _failing:
            log.warning("systemd notify failed: %s", exc)
        _failing = True
        return False
    _failing = False
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog period systemd asked for, in seconds; None when it asked for none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        period = int(usec)
    except ValueError:
        return None
    return period / 2 / 1_000_000 if period > 0 else None


async def _ping(interval: float) -> None:
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def watchdog() -> AsyncIterator[None]:
    """Ping the watchdog from this event loop for as long as the block runs."""
    interval = watchdog_interval()
    async with running_beside(_ping(interval) if interval else None):
        yield
