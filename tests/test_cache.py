"""The TTL cache: single flight, expiry, failures not cached."""

from __future__ import annotations

import asyncio

import pytest

from gateway.cache import AsyncTTLCache, CacheSettings


async def test_concurrent_misses_share_one_load() -> None:
    cache: AsyncTTLCache[int] = AsyncTTLCache("t", CacheSettings(60, 4, 0))
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 42

    results = await asyncio.gather(*(cache.get("k", load) for _ in range(100)))
    assert results == [42] * 100 and calls == 1
    assert await cache.get("k", load) == 42 and calls == 1


async def test_failures_are_not_cached_and_ttl_zero_disables() -> None:
    cache: AsyncTTLCache[int] = AsyncTTLCache("t", CacheSettings(60, 4, 0))

    async def fail() -> int:
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        await cache.get("k", fail)

    async def ok() -> int:
        return 1

    assert await cache.get("k", ok) == 1
    off: AsyncTTLCache[int] = AsyncTTLCache("t", CacheSettings(0, 4, 0))
    calls = []

    async def count() -> int:
        calls.append(1)
        return 1

    await off.get("k", count)
    await off.get("k", count)
    assert len(calls) == 2


async def test_a_cancelled_waiter_does_not_cancel_the_load() -> None:
    cache: AsyncTTLCache[int] = AsyncTTLCache("t", CacheSettings(60, 4, 0))

    async def slow() -> int:
        await asyncio.sleep(0.05)
        return 7

    first = asyncio.create_task(cache.get("k", slow))
    second = asyncio.create_task(cache.get("k", slow))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == 7
