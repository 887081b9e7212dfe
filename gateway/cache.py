"""The one cache layer (cachetools TTL caches) for meta, field definitions, labels and
customer-by-phone: single flight (concurrent misses on a key share one load),
stale-while-revalidate (an expired entry whose last good value is within `stale_seconds` is
served at once while one load refreshes it in the background, with a budget of its own; only
a cold cache waits for its load), and a purge. Single flight is also what the writes use:
identical creates in flight share one (`SingleFlight`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cachetools import LRUCache, TTLCache

from gateway import deadline, logs, metrics

V = TypeVar("V")


@dataclass(frozen=True)
class CacheSettings:
    ttl_seconds: float
    max_entries: int
    stale_seconds: float


class SingleFlight(Generic[V]):
    """Concurrent calls for one key share one task. It is shielded: a caller that stops
    waiting (its deadline) does not stop it, and the others still get its outcome."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[V]] = {}

    async def run(self, key: Hashable, start: Callable[[], Awaitable[V]]) -> V:
        """The outcome of the task running for ``key``; ``start`` makes one when none is."""
        return await asyncio.shield(self.start(key, start))

    def start(self, key: Hashable, start: Callable[[], Awaitable[V]]) -> asyncio.Task[V]:
        """The task running for ``key``, made by ``start`` when none is; not waited for."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(start())
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return task

    def _forget(self, key: Hashable, done: asyncio.Task[V]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        # Every waiter may have gone (cancelled): mark the outcome seen, or asyncio warns
        # that an exception was never retrieved.
        if not done.cancelled():
            done.exception()

    def running(self) -> list[asyncio.Task[V]]:
        """The tasks running now (a stopping process waits for the writes among them)."""
        return list(self._running.values())

    def __len__(self) -> int:
        """Keys with a task running (for tests: nothing is left behind)."""
        return len(self._running)


class AsyncTTLCache(Generic[V]):
    def __init__(self, name: str, settings: CacheSettings) -> None:
        self.name = name
        self.settings = settings
        on = settings.ttl_seconds > 0
        self._data: TTLCache[Hashable, V] | None = (
            TTLCache(maxsize=settings.max_entries, ttl=settings.ttl_seconds) if on else None
        )
        # The last good value of each key and when it was loaded, served while it is no
        # older than the time to live and `stale_seconds`.
        self._last: LRUCache[Hashable, tuple[V, float]] | None = (
            LRUCache(maxsize=settings.max_entries) if on and settings.stale_seconds > 0 else None
        )
        self._loading: SingleFlight[V] = SingleFlight()
        self._purges = 0  # a load that began before a purge must not fill the cache after it

    async def get(self, key: Hashable, load: Callable[[], Awaitable[V]]) -> V:
        if self._data is not None:
            try:
                found = self._data[key]  # one lookup (each reads the clock, drops what expired)
            except KeyError:
                pass
            else:
                _record(self.name, "hit")
                return found
        last = self._last.get(key) if self._last is not None else None
        purges = self._purges
        if last is not None and self._age(last) <= self._servable:
            _record(self.name, "stale")
            budget = deadline.current()
            self._loading.start(key, lambda: self._refresh(key, load, purges, budget, last[1]))
            return last[0]
        _record(self.name, "miss")
        # A task of its own, so one waiter's cancellation does not cancel the others' load.
        return await self._loading.run(key, lambda: self._load(key, load, purges))

    @property
    def _servable(self) -> float:
        """How old the last good value may be and still be served."""
        return self.settings.ttl_seconds + self.settings.stale_seconds

    @staticmethod
    def _age(last: tuple[V, float]) -> float:
        return time.monotonic() - last[1]

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[V]], purges: int) -> V:
        """``purges``: the count when the load was asked for; a purge since voids it."""
        value = await load()
        if purges == self._purges:
            if self._data is not None:
                self._data[key] = value
            if self._last is not None:
                self._last[key] = (value, time.monotonic())
        return value

    async def _refresh(
        self,
        key: Hashable,
        load: Callable[[], Awaitable[V]],
        purges: int,
        asked: deadline.Deadline | None,
        loaded_at: float,
    ) -> V:
        """The load behind a stale answer, in the background: with a budget as long as that
        of the request that found the value stale (now its own, not what that request has
        left); a failure keeps the last good value, and says so."""
        try:
            if asked is None:
                return await self._load(key, load, purges)
            with deadline.budget(asked.seconds, asked.margin):
                return await self._load(key, load, purges)
        except Exception as exc:
            logs.get().warning(
                "cache_stale",
                cache=self.name,
                age_seconds=round(time.monotonic() - loaded_at, 1),
                error=type(exc).__name__,
                detail=getattr(exc, "detail", None),
            )
            raise

    def peek(self, key: Hashable) -> V | None:
        """The value held for ``key``, if any; nothing is loaded, and it is not counted."""
        return self._data.get(key) if self._data is not None else None

    def put(self, key: Hashable, value: V) -> None:
        """Hold ``value`` for ``key`` for the cache's time to live, from now."""
        if self._data is not None:
            self._data[key] = value

    def clear(self) -> None:
        self._purges += 1
        if self._data is not None:
            self._data.clear()
        if self._last is not None:
            self._last.clear()


class Caches:
    """The named caches of one app, so they can be configured and purged in one place."""

    NAMES = ("meta", "field_definitions", "labels", "customer_by_phone")

    def __init__(self, settings: Mapping[str, CacheSettings]) -> None:
        self._caches: dict[str, AsyncTTLCache[Any]] = {
            name: AsyncTTLCache(name, settings[name]) for name in self.NAMES
        }

    def __getitem__(self, name: str) -> AsyncTTLCache[Any]:
        return self._caches[name]

    def purge(self, names: Iterable[str] | None = None) -> list[str]:
        chosen = list(names) if names else list(self._caches)
        for name in chosen:
            self._caches[name].clear()
        return chosen


def _record(cache: str, outcome: str) -> None:
    metrics.child(metrics.CACHE, cache, outcome).inc()
    stats = logs.stats()
    if stats is not None:
        stats.cache.append(outcome)
