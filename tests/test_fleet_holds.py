"""Rate-limit holds shared through a real Redis: what one replica learns from a 429 holds every
replica's calls it limits (and only those), and while Redis is away each replica still honours
what it saw itself."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from conftest import (
    DEFAULT_BREAKER,
    DEFAULT_RETRY,
    FakeClock,
    FakeTransport,
    RedisServer,
    answer,
    free_port,
)

from gateway import deadline
from gateway.errors import UpstreamUnavailable
from gateway.fleet.holds import RedisHolds
from gateway.fleet.redis import SharedRedis, connect
from gateway.upstream import Upstream
from gateway.upstream.limits import RateLimits

SETTINGS = {"retry": DEFAULT_RETRY, "breaker": DEFAULT_BREAKER}


def replica_redis(url: str) -> SharedRedis:
    return connect(url, prefix="test", retry_seconds=60)


@pytest.fixture
async def two(redis_server: RedisServer) -> AsyncIterator[tuple[SharedRedis, SharedRedis]]:
    a, b = replica_redis(redis_server.url), replica_redis(redis_server.url)
    yield a, b
    await a.close()
    await b.close()


async def test_a_hold_made_by_one_replica_holds_the_others(
    two: tuple[SharedRedis, SharedRedis],
) -> None:
    clock = FakeClock()
    a, b = RedisHolds(two[0], clock), RedisHolds(two[1], clock)
    await a.hold("account", clock.time() + 5)
    await a.hold("scope:PUT /users/1", clock.time() + 30)
    assert await b.until(["account", "scope:GET /users/1"]) == clock.time() + 5
    assert await b.until(["account", "scope:PUT /users/1"]) == clock.time() + 30
    await b.hold("account", clock.time() + 1)  # shorter: the longer one stays
    assert await a.until(["account"]) == clock.time() + 5


async def test_without_redis_a_replica_honours_its_own_holds() -> None:
    clock = FakeClock()
    gone = replica_redis(f"redis://127.0.0.1:{free_port()}/0")
    holds = RedisHolds(gone, clock)
    await holds.hold("account", clock.time() + 5)  # no exception: kept here
    assert await holds.until(["account"]) == clock.time() + 5
    assert await holds.until(["scope:x"]) == 0
    await gone.close()


async def test_no_replica_calls_inside_another_replicas_retry_after(
    two: tuple[SharedRedis, SharedRedis],
) -> None:
    """Two upstream clients, as two replicas: one gets a 429, the other's next call waits."""
    clock = FakeClock()
    first = FakeTransport(answer(429, Retry_After="7"), answer(200, {}))
    second = FakeTransport(answer(200, {}))
    one = Upstream(first, name="crm", holds=RedisHolds(two[0], clock), clock=clock, **SETTINGS)
    other = Upstream(second, name="crm", holds=RedisHolds(two[1], clock), clock=clock, **SETTINGS)
    assert (await one.request("GET", "/a", route="/a", retry_safe=True)).status == 200
    assert clock.slept[-1] == 7  # it waited out its own 429
    clock.now -= 7  # back to the moment of the 429: the other replica calls now
    slept = len(clock.slept)
    assert (await other.request("GET", "/b", route="/b")).status == 200
    assert clock.slept[slept:] == [7]  # it waited the whole Retry-After before calling
    assert len(second.calls) == 1


async def test_a_narrow_limit_is_shared_narrowly(two: tuple[SharedRedis, SharedRedis]) -> None:
    """Too many updates of one user, through one replica: the other replica goes on updating
    other users, and answers 503 at once for that user (the wait is past the budget)."""
    clock = FakeClock()
    limits = RateLimits(narrow=lambda resp: resp.headers.get("X-Rate-Limit-Remaining") != "0")
    first = FakeTransport(answer(429, Retry_After="60", X_Rate_Limit_Remaining="300"))
    second = FakeTransport(answer(200, {}))
    one = Upstream(
        first, name="crm", limits=limits, holds=RedisHolds(two[0], clock), clock=clock, **SETTINGS
    )
    other = Upstream(
        second, name="crm", limits=limits, holds=RedisHolds(two[1], clock), clock=clock, **SETTINGS
    )
    with deadline.budget(5, 0):
        with pytest.raises(UpstreamUnavailable):
            await one.request("PUT", "/users/1", route="/users/{id}")
        await other.request("PUT", "/users/2", route="/users/{id}")  # another user: goes on
        with pytest.raises(UpstreamUnavailable):  # that user, through the other replica
            await other.request("PUT", "/users/1", route="/users/{id}")
    assert clock.slept == [] and [c.path for c in second.calls] == ["/users/2"]
