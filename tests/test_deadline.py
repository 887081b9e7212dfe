"""The budget: a hanging upstream gets a 504 with the error body inside the budget."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from conftest import API, AUTH, budgets

from gateway.config import Config
from gateway.deadline import Deadline, budget, current
from gateway.errors import DeadlineExceeded
from gateway.sandbox.server import Faults


async def test_hanging_upstream_answers_504_within_budget(
    make_client: Any, config: Config, faults: Faults
) -> None:
    client = await make_client(budgets(config, default=0.6))
    faults.delay = 30
    started = time.monotonic()
    resp = await client.get(f"{API}/customer/1001", headers=AUTH)
    elapsed = time.monotonic() - started
    assert resp.status == 504
    body = await resp.json()
    assert body["error"] == "Timeout" and "tracking id:" in body["message"]
    assert elapsed < 0.6 + 0.5  # at the budget, never near Khoros's 8 s


async def test_meta_has_its_own_longer_budget(
    make_client: Any, config: Config, faults: Faults
) -> None:
    client = await make_client(budgets(config, default=0.2, meta=3))
    faults.delay = 0.5
    assert (await client.get(f"{API}/meta/object/customer", headers=AUTH)).status == 200
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 504


async def test_attempt_timeout_is_capped_by_what_is_left() -> None:
    deadline = Deadline(1.0, margin=0.1)
    assert deadline.attempt_timeout(5.0) == pytest.approx(0.9, abs=0.05)
    assert deadline.attempt_timeout(0.2) == 0.2
    spent = Deadline(0.05, margin=0.1)
    with pytest.raises(DeadlineExceeded):
        spent.attempt_timeout(5.0)


async def test_a_call_that_cannot_be_repeated_may_take_all_of_a_budget_seen_through() -> None:
    seen_through = Deadline(3.0, margin=0.1, seen_through=True)
    assert seen_through.attempt_timeout(0.5) == 0.5  # a read, a keyed write: the cap
    assert seen_through.attempt_timeout(0.5, repeatable=False) == pytest.approx(2.9, abs=0.05)
    # Only in a create's budget seen through: elsewhere the cap holds for every call.
    assert Deadline(3.0, margin=0.1).attempt_timeout(0.5, repeatable=False) == 0.5


async def test_budget_is_per_task() -> None:
    async def inner() -> float:
        d = current()
        assert d is not None
        return d.seconds

    with budget(2.0, 0.1):
        assert await asyncio.create_task(inner()) == 2.0
    assert current() is None
