"""A NOTIFY_SOCKET, as systemd provides it, collecting every datagram a daemon sends."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path


class NotifyListener:
    """Binds a unix datagram socket (at `path`, or a fresh one) and records each message."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(tempfile.mkdtemp(prefix="nfy", dir="/tmp")) / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def count(self, message: str, after: int = 0) -> int:
        return sum(message in seen.splitlines() for seen in self.messages[after:])

    def wait_for(self, message: str, after: int = 0, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, seen in enumerate(self.messages[after:], start=after):
                if message in seen.splitlines():
                    return i
            time.sleep(0.05)
        raise AssertionError(f"{message} not among {self.messages[after:]}")

    def close(self, remove_dir: bool = True) -> None:
        """Stop listening and remove the socket (a daemon's next send finds nothing)."""
        self._stop.set()
        self._thread.join()
        self.sock.close()
        self.path.unlink()
        if remove_dir:
            self.path.parent.rmdir()
