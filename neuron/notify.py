"""systemd notification over $NOTIFY_SOCKET (Type=notify), with no dependency.

A unit with `Type=notify` waits for READY=1 before it counts the daemon as
started, and `WatchdogSec=` restarts it unless WATCHDOG=1 arrives in time; the
protocol is one datagram per message, so a plain socket is all it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one `KEY=value` message; False when not run under systemd (or it failed)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.warning("systemd notify failed: %s", exc)
        return False


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


async def watchdog_loop(interval: float) -> None:
    """Ping the watchdog until cancelled; the event loop answering is the liveness signal."""
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(interval)
