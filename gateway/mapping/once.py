"""Small helpers for doing a write once: identical calls in flight share one task, which runs
on when its callers stop waiting; and how long a hold on a key may last."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway import deadline
from gateway.cache import seen

T = TypeVar("T")
LEASE_SECONDS = 30.0  # the longest a hold may last without a budget to bound it


async def shared(
    inflight: dict[str, asyncio.Task[Any]], key: str, start: Callable[[], Awaitable[T]]
) -> T:
    """The outcome of the task running for ``key``, started when there is none. The task is
    shielded: a caller that gives up (its deadline) does not stop it."""
    task = inflight.get(key)
    if task is None:
        task = asyncio.ensure_future(start())
        inflight[key] = task
        task.add_done_callback(lambda _: inflight.pop(key, None))
        task.add_done_callback(seen)
    result: T = await asyncio.shield(task)
    return result


def lease() -> float:
    """How long a hold taken now may last: the budget left, and a second to release it."""
    budget = deadline.current()
    return LEASE_SECONDS if budget is None else max(budget.remaining(), 0.0) + 1.0
