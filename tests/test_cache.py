"""The TTL cache: single flight, expiry, failures not cached."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from conftest import API, AUTH, EF_AUTH, FAST_BUDGET, events, tuned

from gateway.cache import AsyncTTLCache, CacheSettings
from gateway.config import Config
from gateway.sandbox.server import CALLS, Faults
from gateway.sandbox.store import Store


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


class Gated:
    """A load that answers ``value`` once released, counting its calls."""

    def __init__(self, value: int) -> None:
        self.value, self.calls, self.release = value, 0, asyncio.Event()

    async def __call__(self) -> int:
        self.calls += 1
        await self.release.wait()
        return self.value


async def test_an_expired_value_is_served_at_once_while_one_load_refreshes_it() -> None:
    cache: AsyncTTLCache[int] = AsyncTTLCache("t", CacheSettings(0.05, 4, 60))
    first = Gated(1)
    first.release.set()
    assert await cache.get("k", first) == 1
    await asyncio.sleep(0.06)  # expired
    refresh = Gated(2)
    served = await asyncio.wait_for(
        asyncio.gather(*(cache.get("k", refresh) for _ in range(50))), 1
    )
    assert served == [1] * 50 and refresh.calls == 1  # none waited; one refresh
    refresh.release.set()
    await asyncio.sleep(0)  # the refresh lands
    while len(cache._loading):
        await asyncio.sleep(0.001)
    assert await cache.get("k", Gated(3)) == 2  # a hit: the refreshed value


async def test_a_refresh_that_fails_keeps_the_last_good_value_and_says_so(capsys: Any) -> None:
    cache: AsyncTTLCache[int] = AsyncTTLCache("t", CacheSettings(0.05, 4, 60))
    ok = Gated(1)
    ok.release.set()
    await cache.get("k", ok)
    await asyncio.sleep(0.06)

    async def fail() -> int:
        raise RuntimeError("down")

    assert await cache.get("k", fail) == 1
    while len(cache._loading):
        await asyncio.sleep(0.001)
    assert await cache.get("k", fail) == 1  # still the last good value (a refresh again)
    (line, *_) = [e for e in events(capsys.readouterr().out) if e["event"] == "cache_stale"]
    assert line["cache"] == "t" and line["error"] == "RuntimeError"


async def test_past_stale_seconds_and_when_cold_the_load_is_waited_for() -> None:
    cache: AsyncTTLCache[int] = AsyncTTLCache("t", CacheSettings(0.05, 4, 0.05))
    ok = Gated(1)
    ok.release.set()
    await cache.get("k", ok)
    await asyncio.sleep(0.11)  # past the time to live and stale_seconds

    async def fail() -> int:
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        await cache.get("k", fail)


async def test_a_purge_is_not_undone_by_a_load_that_began_before_it() -> None:
    cache: AsyncTTLCache[int] = AsyncTTLCache("t", CacheSettings(0.05, 4, 60))
    ok = Gated(1)
    ok.release.set()
    await cache.get("k", ok)
    await asyncio.sleep(0.06)
    before = Gated(2)
    assert await cache.get("k", before) == 1  # stale; the refresh waits
    cache.clear()
    before.release.set()
    while len(cache._loading):
        await asyncio.sleep(0.001)
    after = Gated(3)
    after.release.set()
    assert await cache.get("k", after) == 3  # loaded after the purge, not the refresh's 2


async def test_expired_definitions_are_served_at_once_while_a_hanging_crm_is_asked_again(
    make_client: Any, fast: Config, faults: Faults, store: Store, sandbox: Any, capsys: Any
) -> None:
    """Stale-while-revalidate through the gateway: with the field definitions expired and the
    CRM's `/user_fields` hanging, find customer (whose `/users/{id}` answers), meta and
    /label answer from the last good definitions at once, not after the budget; one refresh
    runs in the background; the next good load replaces them."""
    short = CacheSettings(ttl_seconds=0.2, max_entries=16, stale_seconds=60)
    caches = {**fast.cache, "meta": short, "field_definitions": short, "labels": short}
    one_attempt = {"attempt_timeout_seconds": FAST_BUDGET}  # a refresh hangs its whole budget
    client = await make_client(tuned(fast, cache=caches, upstream=one_attempt))

    async def three() -> list[tuple[int, Any, float]]:
        async def timed(path: str, headers: dict[str, str]) -> tuple[int, Any, float]:
            started = time.monotonic()
            resp = await client.get(path, headers=headers)
            return resp.status, await resp.json(), time.monotonic() - started

        return list(await asyncio.gather(
            timed(f"{API}/customer/1001", AUTH),
            timed(f"{API}/meta/object/customer", AUTH),
            timed("/label", EF_AUTH),
        ))  # fmt: skip

    before = await three()
    assert [s for s, _, _ in before] == [200] * 3
    await asyncio.sleep(0.25)  # every cache expired, well within stale_seconds
    faults.delay, faults.path_prefix = 3600, "/api/v2/user_fields"  # hangs; /users/1001 answers
    asked_before = sandbox.app[CALLS].count("GET /api/v2/user_fields")
    for _ in range(3):
        answers = await three()
        assert [s for s, _, _ in answers] == [200] * 3
        assert [body for _, body, _ in answers] == [body for _, body, _ in before]
        assert max(took for _, _, took in answers) < FAST_BUDGET / 4, answers
    asked = sandbox.app[CALLS].count("GET /api/v2/user_fields") - asked_before
    assert asked == 2  # one refresh in flight per cache (definitions, labels), not one each

    # The CRM answers again, with a field made active and a new label: the refresh lands.
    store.user_fields[4]["active"] = True  # old_segment
    store.user_fields[0]["custom_field_options"].append(
        {"id": 903, "name": "Diamond", "raw_name": "Diamond", "value": "diamond", "position": 3}
    )
    faults.delay = 0
    end = time.monotonic() + 10
    while True:
        _, meta, _ = (await three())[1]
        labels = await (await client.get("/label", headers=EF_AUTH)).json()
        fields = [f["name"] for f in meta["fields"]]
        if "old_segment" in fields and "Diamond" in [x["name"] for x in labels]:
            break
        assert time.monotonic() < end, (fields, labels)
        await asyncio.sleep(0.05)
    # The refreshes that hung said so, as the last good values went on being served.
    stale = [e for e in events(capsys.readouterr().out) if e["event"] == "cache_stale"]
    assert {e["cache"] for e in stale} == {"field_definitions", "labels"}
    assert {e["error"] for e in stale} == {"DeadlineExceeded"}
