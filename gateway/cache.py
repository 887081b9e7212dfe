"""TTL caches (cachetools) with single flight: concurrent misses on one key share one load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

V = TypeVar("V")


class AsyncTTLCache(Generic[V]):
    def __init__(self, name: str, *, ttl: float, max_entries: int) -> None:
        self.name = name
        self._data: TTLCache[Hashable, V] | None = (
            TTLCache(maxsize=max_entries, ttl=ttl) if ttl > 0 else None
        )
        self._loading: dict[Hashable, asyncio.Task[V]] = {}

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        if self._data is not None and key in self._data:
            return self._data[key]
        task = self._loading.get(key)
        if task is None:
            # A task of its own, so one waiter's cancellation does not cancel the others' load.
            task = asyncio.ensure_future(self._load(key, load))
            task.add_done_callback(_retrieve)
            self._loading[key] = task
        return await asyncio.shield(task)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        try:
            value = await load()
            if self._data is not None:
                self._data[key] = value
            return value
        finally:
            del self._loading[key]

    def clear(self) -> None:
        if self._data is not None:
            self._data.clear()


def _retrieve(task: asyncio.Task[object]) -> None:
    # Every waiter may have gone (cancelled); mark the outcome seen so asyncio does not warn.
    if not task.cancelled():
        task.exception()
