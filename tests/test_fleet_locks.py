"""Write locks across the fleet, against a real redis-server: holders of one key through three
clients (as three processes have) run one at a time; one process asks Redis once per key at a
time; a lease lasts what its holder asked for (its budget and a create's grace) and ends by
itself when its holder dies;
a wait that runs out is a timeout, never a write without the lock; Redis stopped is this
process's lock alone, said loudly (the host's, for the workers of a supervisor)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from conftest import ROOT, RedisServer, events, host_lock_holder

from gateway import deadline, metrics
from gateway.errors import DeadlineExceeded
from gateway.fleet.host_files import HostFiles
from gateway.fleet.host_locks import HostLocks
from gateway.fleet.locks import RedisLocks
from gateway.fleet.redis import SharedRedis, connect
from gateway.locks import LocalLocks
from gateway.mapping.once import lease


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[SharedRedis]]:
    """Three clients of one Redis, each with its own connections, as three processes have."""
    made = [connect(redis_server.url, prefix="test", retry_seconds=0.1) for _ in range(3)]
    yield made
    for r in made:
        await r.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Any]:
    """Redis itself, to look at the leases."""
    async with redis.asyncio.Redis.from_url(redis_server.url) as r:
        yield r


async def test_holders_through_three_clients_hold_one_at_a_time(
    clients: list[SharedRedis],
) -> None:
    fleet = [RedisLocks(r) for r in clients]
    inside, peak, order = [0], [0], []

    async def writer(n: int) -> None:
        async with fleet[n % 3].hold("case:1", 5):
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            await asyncio.sleep(0.003)  # the others try meanwhile
            order.append(n)
            inside[0] -= 1

    await asyncio.gather(*(writer(n) for n in range(24)))
    assert peak[0] == 1 and sorted(order) == list(range(24))
    for n in range(3):  # in each process, the holders came in their order
        mine = [k for k in order if k % 3 == n]
        assert mine == sorted(mine)
    assert all(len(locks.local) == 0 for locks in fleet)


async def test_one_process_asks_redis_with_one_task_per_key(
    clients: list[SharedRedis], raw: Any
) -> None:
    a, b, _ = clients
    token = await a.acquire("test:lock:case:2", lease_seconds=5, wait_seconds=0)
    asking, most = [0], [0]
    run = b.run

    async def counted(operation: str, command: Callable[[Any], Awaitable[Any]], **kw: Any) -> Any:
        asking[0] += operation == "lease"
        most[0] = max(most[0], asking[0])
        try:
            return await run(operation, command, **kw)
        finally:
            asking[0] -= operation == "lease"

    b.run = counted  # type: ignore[method-assign]
    locks, entered = RedisLocks(b), []

    async def writer(n: int) -> None:
        async with locks.hold("case:2", 5):
            entered.append(n)

    waiting = [asyncio.create_task(writer(n)) for n in range(10)]
    await asyncio.sleep(0.2)  # ten writers wait; the other process still holds the lease
    assert entered == [] and most[0] == 1
    await a.release("test:lock:case:2", token)
    await asyncio.gather(*waiting)
    assert entered == list(range(10)) and most[0] == 1
    assert await raw.exists("test:lock:case:2") == 0


async def test_a_lease_lasts_what_its_holder_asked_and_is_given_back_past_it(
    clients: list[SharedRedis], raw: Any
) -> None:
    locks = RedisLocks(clients[0])
    with deadline.budget(0.5, 0.1):
        # A create's hold: its budget, the grace it runs on past it (2 s), a second to give back.
        async with locks.hold("case:3", lease(grace=2.0)):
            ttl = await raw.pttl("test:lock:case:3")
            assert 2_500 < ttl <= 3_500
            await asyncio.sleep(0.6)  # the holder overruns its budget
        assert await raw.exists("test:lock:case:3") == 0  # given back all the same
    async with locks.hold("case:3", 30):  # no budget: the lease asked for
        assert 29_000 < await raw.pttl("test:lock:case:3") <= 30_000
    # The time spent waiting for this process's lock is taken off the lease asked for.
    local = LocalLocks()
    waiting = RedisLocks(clients[0], local)
    leases: list[int] = []

    async def later() -> None:
        async with waiting.hold("case:5", 3.0):
            leases.append(await raw.pttl("test:lock:case:5"))

    async with local.hold("case:5", 30):
        waiter = asyncio.create_task(later())
        await asyncio.sleep(1.0)
    await waiter
    assert 0 < leases[0] <= 2_050


async def test_a_wait_that_outlasts_the_budget_is_a_timeout_and_no_write(
    clients: list[SharedRedis],
) -> None:
    a, b, _ = clients
    token = await a.acquire("test:lock:case:4", lease_seconds=5, wait_seconds=0)
    entered = []
    with deadline.budget(0.3, 0.1), pytest.raises(DeadlineExceeded):
        async with RedisLocks(b).hold("case:4", 5):
            entered.append(1)
    assert entered == [] and b.up  # the budget ran out, Redis did not: no fallback
    await a.release("test:lock:case:4", token)


async def test_a_redis_call_cut_short_by_the_budget_is_a_timeout_not_a_fallback() -> None:
    hung = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    slow = connect(f"redis://127.0.0.1:{hung.getsockname()[1]}/0", prefix="test")
    entered = []
    try:
        with deadline.budget(0.15, 0.1), pytest.raises(DeadlineExceeded):
            async with RedisLocks(slow).hold("case:4", 5):
                entered.append(1)
        assert entered == [] and slow.up
        async with RedisLocks(slow).hold("case:4", 5):  # Redis's own timeout: it is down
            entered.append(2)
        assert entered == [2] and not slow.up
    finally:
        await slow.close()
        hung.close()


HOLDER = """
import asyncio, sys
from gateway.fleet.host_files import HostFiles
from gateway.fleet.host_locks import HostLocks
from gateway.fleet.locks import RedisLocks
from gateway.fleet.redis import connect

async def main() -> None:
    async with RedisLocks(connect(sys.argv[1], prefix="test")).hold("case:5", 2.0):
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_lease_ends_when_its_holder_dies(
    redis_server: RedisServer, clients: list[SharedRedis], processes: list[Any], raw: Any
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_server.url], cwd=ROOT, stdout=subprocess.PIPE
    )
    processes.append(holder)
    assert holder.stdout is not None
    assert await asyncio.to_thread(holder.stdout.readline) == b"held\n"
    holder.kill()  # no chance to give the lease back
    holder.wait()
    assert await raw.exists("test:lock:case:5") == 1
    locks, entered = RedisLocks(clients[0]), []
    with deadline.budget(0.3, 0.1), pytest.raises(DeadlineExceeded):
        async with locks.hold("case:5", 5):
            entered.append("early")
    with deadline.budget(5, 0.1):
        async with locks.hold("case:5", 5):  # once the dead holder's lease ran out
            entered.append("after")
    assert entered == ["after"]


async def test_redis_stopped_is_this_processs_lock_alone_said_loudly(
    redis_server: RedisServer, clients: list[SharedRedis], capsys: Any
) -> None:
    locks = RedisLocks(clients[0])
    before = metrics.SHARED_STATE_ERRORS.labels("lease")._value.get()
    redis_server.stop()
    inside, peak = [0], [0]

    async def writer() -> None:
        async with locks.hold("case:6", 5):
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            await asyncio.sleep(0.003)
            inside[0] -= 1

    with deadline.budget(2, 0.1):
        await asyncio.gather(*(writer() for _ in range(10)))
    assert peak[0] == 1 and not clients[0].up
    assert metrics.SHARED_STATE_ERRORS.labels("lease")._value.get() == before + 1
    down = [e for e in events(capsys.readouterr().out) if e["event"] == "shared_state_unavailable"]
    assert [(e["level"], e["operation"]) for e in down] == [("error", "lease")]

    redis_server.start()
    await asyncio.sleep(0.15)  # retry_seconds: Redis is asked again
    async with redis.asyncio.Redis.from_url(redis_server.url) as fresh:
        async with locks.hold("case:6", 5):
            assert await fresh.exists("test:lock:case:6") == 1  # a fleet lease again
        assert await fresh.exists("test:lock:case:6") == 0


async def test_with_redis_stopped_the_workers_of_a_host_still_hold_one_at_a_time(
    redis_server: RedisServer, clients: list[SharedRedis], processes: list[Any], tmp_path: Path
) -> None:
    """Behind Redis stands the host's lock (a supervisor's workers): while Redis is away, a
    key another worker of the host holds is still held."""
    locks, entered = RedisLocks(clients[0], HostLocks(HostFiles(tmp_path))), []
    redis_server.stop()
    async with locks.hold("case:7", 5):
        entered.append("first")
    assert not clients[0].up  # Redis was asked, and is down: the host's lock alone
    holder = await host_lock_holder(tmp_path, "case:7")  # another worker of this host
    processes.append(holder)
    with deadline.budget(0.3, 0.1), pytest.raises(DeadlineExceeded):
        async with locks.hold("case:7", 5):
            entered.append("while held")
    holder.kill()
    holder.wait()
    with deadline.budget(5, 0.1):
        async with locks.hold("case:7", 5):
            entered.append("after")
    assert entered == ["first", "after"]
