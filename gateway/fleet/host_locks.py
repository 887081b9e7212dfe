"""One writer per key across the workers of one host, without Redis (docs/behaviour.md §5):
the updates of one case, and the creates of one identity, run one at a time whichever worker
they came through.

A holder first takes this process's lock for the key (so one task per process at most asks
the host), then an exclusive `flock` on a file named after the key's hash in the supervisor's
state directory. The kernel drops a flock when its process dies, however it dies, so a killed
holder frees the key at once; a lease is not needed. The flock is asked for without blocking
(the event loop serves on), again after a short pause that grows, for at most what is left of
the request's budget: a wait that runs out is the gateway's timeout (504), never a write
without the lock.

Lock files do not pile up: a holder deletes its file before it lets go, and one that takes a
lock checks that its file is still the one at the path (else it was deleted meanwhile, and it
tries again on the new one). A holder that died leaves its file behind, unlocked: the next
holder of that key deletes it, and a worker deletes all such files when it starts (`sweep`)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from gateway import deadline
from gateway.errors import DeadlineExceeded
from gateway.fleet.host_files import HostFiles
from gateway.locks import LocalLocks

FIRST_PAUSE_SECONDS = 0.002  # a write's lock is usually held for one upstream call or two
LONGEST_PAUSE_SECONDS = 0.02  # as often as a Redis lease is asked for again
SUFFIX = ".lock"


class HostLocks:
    def __init__(self, files: HostFiles) -> None:
        self.files = files
        self.local = LocalLocks()

    def path(self, key: str) -> Path:
        """The key's lock file: its hash, so any key makes a short, safe file name."""
        return self.files.directory / "locks" / (hashlib.sha256(key.encode()).hexdigest() + SUFFIX)

    @asynccontextmanager
    async def hold(self, key: str, lease_seconds: float) -> AsyncIterator[None]:
        async with self.local.hold(key, lease_seconds):
            path = self.path(key)
            fd = await self._acquire(path, lease_seconds)
            try:
                yield
            finally:
                if fd is not None:
                    _release(path, fd)

    async def _acquire(self, path: Path, lease_seconds: float) -> int | None:
        """The locked file's descriptor; None when the host's files fail (this process's lock
        alone, said loudly)."""
        left = deadline.left()  # measured now, after waiting for this process's lock
        wait = lease_seconds if left is None else max(left, 0.0)
        loop = asyncio.get_running_loop()
        end, pause = loop.time() + wait, FIRST_PAUSE_SECONDS
        while True:
            try:
                fd = _try_lock(path)
            except OSError as exc:
                self.files.failed("lock", exc)
                return None
            if fd is not None:
                self.files.worked()
                return fd
            left = end - loop.time()
            if left <= 0:
                raise DeadlineExceeded(
                    detail="another gateway process held the write lock past the request's budget"
                )
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, LONGEST_PAUSE_SECONDS)

    def sweep(self) -> int:
        """Delete the lock files nobody holds (left by processes that died holding them);
        answers how many went."""
        try:
            names = list((self.files.directory / "locks").glob("*" + SUFFIX))
        except OSError:
            return 0
        gone = 0
        for path in names:
            try:
                fd = _try_lock(path, create=False)
            except OSError:
                continue  # gone already, or not ours to judge
            if fd is not None:
                _release(path, fd)
                gone += 1
        return gone


def _try_lock(path: Path, *, create: bool = True) -> int | None:
    """One attempt: the descriptor of ``path``, locked, when it was free and is still the file
    at the path; None when another process holds it. (flock, not fcntl's record locks: those
    belong to the process, and closing any descriptor of the file would drop them.)"""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o600)
        except FileNotFoundError:
            if not create:
                raise
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        # Its holder deleted it before letting go: the lock to take is the file now there.
        os.close(fd)
        if not create:
            raise FileNotFoundError(path)
    return None  # deleted under us each time: busy, so ask again after a pause


def _same_file(fd: int, path: Path) -> bool:
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _release(path: Path, fd: int) -> None:
    """Delete the file while it is still locked (whoever opened it meanwhile sees that it went,
    and tries again on a new one), then let go."""
    try:
        with contextlib.suppress(OSError):  # left behind at worst: `sweep` deletes it
            os.unlink(path)
    finally:
        os.close(fd)
