"""One writer per key (a case, a create): ``async with locks.hold(key, lease_seconds):`` runs
the block while no other holder of that key does, in the order the holders came.

``KeyedLocks`` is the interface the engine is given. ``LocalLocks`` serialises the writers of
one process; a fleet-wide implementation (Redis) can replace it. The lease is how long a
holder may keep a key at most: a fleet lock expires after it when its process dies. In one
process a holder always releases (its request's budget, and the grace of a create that runs
on past it, bound it), so the lease is not needed. A waiter waits at most what is left of its
request's budget: then it is the gateway's timeout (504), and it writes nothing, also when it
runs on past its caller's deadline (a create).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from gateway import deadline
from gateway.errors import DeadlineExceeded


class KeyedLocks(Protocol):
    def hold(self, key: str, lease_seconds: float) -> AbstractAsyncContextManager[None]: ...


class LocalLocks:
    """An asyncio lock per key, made on first use and dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: str, lease_seconds: float) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            left = deadline.left()
            try:
                async with asyncio.timeout(None if left is None else max(left, 0.0)):
                    await lock.acquire()
            except TimeoutError:
                raise DeadlineExceeded(
                    detail="another request held the write lock past the request's budget"
                ) from None
            try:
                yield
            finally:
                lock.release()
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    def __len__(self) -> int:
        """Keys held or awaited now (for tests: nothing is left behind)."""
        return len(self._locks)
