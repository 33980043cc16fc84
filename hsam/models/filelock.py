"""An exclusive lock between processes, so two downloads of the same file end with one good copy.

POSIX uses ``fcntl.flock``: the kernel drops the lock when its holder dies, so a crash never blocks later runs.
Elsewhere a lock file created with ``O_EXCL`` stands in; its holder refreshes its time stamp while it works, and a
lock left untouched for ``stale_after`` seconds is taken to belong to a process that died.
The lock file is removed on release, so nothing is left in the cache.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional, Union

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class _Lock:
    def __init__(self, path: Union[str, Path], on_wait: Optional[Callable[[], None]] = None) -> None:
        self.path = Path(path)
        self.on_wait = on_wait

    def _waiting(self) -> None:
        if self.on_wait is not None:
            self.on_wait()
            self.on_wait = None  # say it once

    def refresh(self) -> None:
        """Tell waiters that the holder is still alive (needed by the O_EXCL lock only)."""

    def __enter__(self) -> "_Lock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class FlockLock(_Lock):
    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._waiting()
                fcntl.flock(fd, fcntl.LOCK_EX)
            # The previous holder removes the file when it is done; if that happened after our open, we hold a lock
            # on a file nobody else can see and must start over with the new one.
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                current = False
            if current:
                self._fd = fd
                return
            os.close(fd)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)  # while still locked, so no waiter can lock the old file after it is gone
        os.close(self._fd)


class ExclusiveCreateLock(_Lock):
    def __init__(self, path: Union[str, Path], on_wait: Optional[Callable[[], None]] = None, poll: float = 0.2,
                 stale_after: float = 600.0) -> None:
        super().__init__(path, on_wait)
        self.poll = poll
        self.stale_after = stale_after

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._wait_or_break()
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            self._refreshed = time.monotonic()
            return

    def _wait_or_break(self) -> None:
        try:
            idle = time.time() - os.stat(self.path).st_mtime
        except FileNotFoundError:
            return
        if idle > self.stale_after:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            return
        self._waiting()
        time.sleep(self.poll)

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._refreshed > self.stale_after / 10:
            os.utime(self.path)
            self._refreshed = now

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


FileLock = FlockLock if fcntl is not None else ExclusiveCreateLock
