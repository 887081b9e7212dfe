"""Small helpers for doing a write once: a shared write runs on when its callers stop waiting, for
as long as one more attempt may take (identical calls in flight share it through
`gateway.cache.SingleFlight`); and how long a hold on a key may last."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway import deadline

T = TypeVar("T")
LEASE_SECONDS = 30.0  # the longest a hold may last without a budget to bound it


def lease() -> float:
    """How long a hold taken now may last: the budget left, and a second to release it."""
    budget = deadline.current()
    return LEASE_SECONDS if budget is None else max(budget.remaining(), 0.0) + 1.0


async def past_deadline(start: Callable[[], Awaitable[T]], grace: float) -> T:
    """Run under the caller's budget plus ``grace`` (one attempt's time): a write sent just
    before the caller's deadline still gets its answer, so what it made is known."""
    budget = deadline.current()
    left = budget.remaining() if budget is not None else 0.0
    with deadline.budget(max(left, 0.0) + grace, budget.margin if budget else 0.1):
        return await start()
