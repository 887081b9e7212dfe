"""State a fleet of gateways shares: rate-limit holds, OAuth tokens and the lock around their
refresh. Each is a small interface with an in-process implementation here (the tokens also
coordinate the processes of one host through their file); `gateway.fleet` has the ones shared
through Redis, which replace these without touching the layers that use them."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway import deadline, logs
from gateway.errors import DeadlineExceeded
from gateway.upstream.clock import SYSTEM, Clock

FILE_LOCK_POLL_SECONDS = 0.02


class Holds(Protocol):
    """Keys held by rate limits, until a wall-clock time (the account, or one scope)."""

    async def until(self, keys: Iterable[str]) -> float:
        """The latest time any of these keys is held until; 0 when none is."""
        ...

    async def hold(self, key: str, until: float) -> None:
        """Hold the key until then; a longer hold already there stays."""
        ...


class LocalHolds:
    """Holds in this process. Bounded: past `limit` keys, those whose hold is over go."""

    def __init__(self, clock: Clock = SYSTEM, limit: int = 10_000) -> None:
        self._clock, self._limit = clock, limit
        self._until: dict[str, float] = {}

    async def until(self, keys: Iterable[str]) -> float:
        if not self._until:  # nothing held: the common case, asked before every attempt
            return 0.0
        return max((self._until.get(k, 0.0) for k in keys), default=0.0)

    async def hold(self, key: str, until: float) -> None:
        if until > self._until.get(key, 0.0):
            self._until[key] = until
        if len(self._until) > self._limit:
            now = self._clock.time()
            self._until = {k: t for k, t in self._until.items() if t > now}
            while len(self._until) > self._limit:  # all still held: the earliest to end goes
                del self._until[min(self._until, key=self._until.__getitem__)]


@dataclass(frozen=True)
class Tokens:
    access: str = field(repr=False)
    refresh: str = field(repr=False)
    expires_at: float | None = None  # wall-clock seconds; None: unknown


class TokenStore(Protocol):
    """The OAuth tokens everyone uses, and the lock that lets one refresh them at a time."""

    async def get(self) -> Tokens: ...

    async def put(self, tokens: Tokens) -> None: ...

    def refreshing(self) -> AbstractAsyncContextManager[None]:
        """Held while one caller refreshes; the others wait, then read what it stored."""
        ...


class LocalTokenStore:
    """Tokens in memory, and in the operator's file (mode 0600) when one is named, so that a
    restart uses the latest tokens: refresh tokens rotate, and the first one is then spent.
    Processes that share the file (the workers of one host) coordinate through it: a refresh
    holds an exclusive lock on `<file>.lock` and reads the file again once it has it, and a
    `get` reads the file again whenever it changed, so a token another process refreshed is
    used at once rather than after a 401."""

    def __init__(self, initial: Tokens, file: Path | None = None) -> None:
        self._tokens = initial
        self._file = file
        self._lock = asyncio.Lock()
        self._seen: tuple[int, int, int] | None = None  # the file as last read
        self._load()

    async def get(self) -> Tokens:
        if self._file is not None and _stamp(self._file) != self._seen:
            self._load()
        return self._tokens

    async def put(self, tokens: Tokens) -> None:
        self._tokens = tokens
        if self._file is not None:
            saved = {
                "access_token": tokens.access,
                "refresh_token": tokens.refresh,
                "expires_at": tokens.expires_at,
            }
            try:
                self._seen = _write_private(self._file, json.dumps(saved))
            except OSError as exc:  # kept in memory (and in Redis, if any): serve on, loudly
                logs.get().error(
                    "oauth_token_file_unwritable",
                    file=str(self._file),
                    error=exc.strerror,
                    action="a restart would use older tokens: fix the file's directory",
                )

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        async with self._lock:
            if self._file is None:
                yield
                return
            async with _file_lock(self._file.with_name(self._file.name + ".lock")):
                self._load()  # what a process that held the lock before us stored
                yield

    def refreshing(self) -> AbstractAsyncContextManager[None]:
        return self._locked()

    def _load(self) -> None:
        if self._file is None:
            return
        self._seen = _stamp(self._file)
        if not self._file.exists():
            return
        try:
            saved = json.loads(self._file.read_text())
            expires = saved.get("expires_at")
            self._tokens = Tokens(
                access=str(saved.get("access_token") or self._tokens.access),
                refresh=str(saved.get("refresh_token") or self._tokens.refresh),
                expires_at=float(expires) if isinstance(expires, int | float) else None,
            )
        except (OSError, ValueError, AttributeError):
            logs.get().warning("oauth_token_file_unreadable", file=str(self._file))
            return
        logs.redactor.add(self._tokens.access)  # learned here, not from the config
        logs.redactor.add(self._tokens.refresh)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes whenever the file is replaced (each write is a new inode)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive lock between processes (flock: the kernel drops it when its holder dies),
    waited for without blocking the event loop, within the request's budget."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                left = deadline.left()
                if left is not None and left <= 0:
                    raise DeadlineExceeded(
                        detail="waited for another process's token refresh"
                    ) from None
                await asyncio.sleep(FILE_LOCK_POLL_SECONDS)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_private(path: Path, text: str) -> tuple[int, int, int]:
    """Write so that only the owner can read, and readers never see half a file; a temporary
    file of its own, since other processes may write the same file at the same time. Answers
    the written file's stamp."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")  # 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            st = os.fstat(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return st.st_ino, st.st_mtime_ns, st.st_size
