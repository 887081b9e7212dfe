"""One writer per key (a case, a create): ``async with locks.hold(key, lease_seconds):`` runs
the block while no other holder of that key does, in the order the holders came.

``KeyedLocks`` is the interface the engine is given. ``LocalLocks`` serialises the writers of
one process; a fleet-wide implementation (Redis) can replace it. The lease is how long a
holder may keep a key at most: a fleet lock expires after it when its process dies. In one
process a holder always releases (its request's budget bounds it), so the lease is not needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol


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
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[key]

    def __len__(self) -> int:
        """Keys held or awaited now (for tests: nothing is left behind)."""
        return len(self._locks)
