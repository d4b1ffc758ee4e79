"""Which files a daemon opens in a folder, seen through Linux inotify (root ignores file
modes, so "make it unreadable" proves nothing in a test run as root; this does)."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

_IN_ACCESS, _IN_OPEN, _IN_NONBLOCK = 0x1, 0x20, 0o4000
_HEADER = struct.Struct("iIII")


class OpenWatch:
    """Records every open or read of the watched folders and of the files directly in them."""

    def __init__(self, *folders: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(_IN_NONBLOCK)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.names: dict[int, Path] = {}
        for folder in folders:
            wd = libc.inotify_add_watch(self.fd, str(folder).encode(), _IN_OPEN | _IN_ACCESS)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
            self.names[wd] = folder
        self.seen: list[Path] = []

    def opened(self) -> list[Path]:
        """Everything opened or read so far (a folder itself when it was listed)."""
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.seen
            offset = 0
            while offset < len(data):
                wd, _mask, _cookie, size = _HEADER.unpack_from(data, offset)
                raw = data[offset + _HEADER.size : offset + _HEADER.size + size]
                name = raw.rstrip(b"\0").decode()
                self.seen.append(self.names[wd] / name if name else self.names[wd])
                offset += _HEADER.size + size

    def close(self) -> None:
        os.close(self.fd)
