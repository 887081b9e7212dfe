"""One writer per key: holders of one key run one at a time, in the order they came; other
keys are not held up; a waiter waits at most its budget; nothing is left behind, also when a
holder fails or is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from gateway import deadline
from gateway.errors import DeadlineExceeded
from gateway.locks import LocalLocks


async def test_holders_of_one_key_run_one_at_a_time_in_order() -> None:
    locks, inside, order = LocalLocks(), [0], []

    async def writer(n: int) -> None:
        async with locks.hold("case:1", 5):
            inside[0] += 1
            assert inside[0] == 1
            await asyncio.sleep(0)  # let the others try to enter
            order.append(n)
            inside[0] -= 1

    await asyncio.gather(*(writer(n) for n in range(10)))
    assert order == list(range(10))
    assert len(locks) == 0


async def test_other_keys_are_not_held_up() -> None:
    locks = LocalLocks()
    entered = asyncio.Event()
    async with locks.hold("case:1", 5), locks.hold("case:2", 5):
        entered.set()
    assert entered.is_set() and len(locks) == 0


async def test_a_failing_or_cancelled_holder_releases() -> None:
    locks = LocalLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("k", 5):
            raise RuntimeError("boom")
    held = asyncio.Event()

    async def stuck() -> None:
        async with locks.hold("k", 5):
            held.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(stuck())
    await held.wait()
    waiter = asyncio.create_task(asyncio.wait_for(locks.hold("k", 5).__aenter__(), 0.05))
    with pytest.raises(TimeoutError):
        await waiter  # a waiter that gives up leaves nothing behind either
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with locks.hold("k", 5):
        pass
    assert len(locks) == 0


async def test_a_waiter_waits_at_most_its_budget_and_then_writes_nothing() -> None:
    locks, entered = LocalLocks(), []
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("create:1", 5):
            await release.wait()

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    with deadline.budget(0.2, 0.1), pytest.raises(DeadlineExceeded):
        async with locks.hold("create:1", 5):
            entered.append(1)
    assert entered == []
    release.set()
    await held
    assert len(locks) == 0
