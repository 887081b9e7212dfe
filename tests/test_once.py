"""Doing a write once: a hold lasts as long as the budget (a create's also its grace, and a
second to release it), and a shared write runs on past its caller's deadline by its grace, in
a budget seen through."""

from __future__ import annotations

import asyncio

import pytest

from gateway import deadline
from gateway.errors import DeadlineExceeded
from gateway.mapping.once import LEASE_SECONDS, lease, past_deadline


async def test_a_hold_lasts_the_budget_left_and_a_second() -> None:
    assert lease() == LEASE_SECONDS  # no budget: the longest
    with deadline.budget(5.0, 0.1):
        assert 5.5 < lease() <= 6.0
    with deadline.budget(0.0, 0.1):
        assert lease() == pytest.approx(1.0, abs=0.05)  # spent: one second to release
    with deadline.budget(5.0, 0.1):
        assert 7.5 < lease(grace=2.0) <= 8.0  # a create's: and the grace it runs on past it


async def test_a_write_runs_on_past_its_callers_deadline_for_its_grace() -> None:
    async def write() -> float:
        await asyncio.sleep(0.15)
        budget = deadline.current()
        assert budget is not None
        return budget.remaining()

    with deadline.budget(0.1, 0.0):
        left = await past_deadline(write, grace=0.2)  # 0.1 + 0.2 s: done in time
    assert 0.0 < left < 0.2

    async def hangs() -> None:
        budget = deadline.current()
        assert budget is not None
        budget.attempt_timeout(1.0)  # what every upstream attempt asks of the budget
        await asyncio.sleep(0.3)
        budget.attempt_timeout(1.0)

    with deadline.budget(0.05, 0.0), pytest.raises(DeadlineExceeded):
        await past_deadline(hangs, grace=0.1)

    async def seen_through() -> bool:
        budget = deadline.current()
        return budget is not None and budget.seen_through

    with deadline.budget(1.0, 0.1):
        assert await past_deadline(seen_through, grace=0.1)
        assert not await seen_through()
