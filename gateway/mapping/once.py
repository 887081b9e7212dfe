"""Small helpers for doing a write once: a shared write runs on when its callers stop waiting, for
as long as one more attempt may take (identical calls in flight share it through
`gateway.cache.SingleFlight`); and how long a hold on a key may last."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from gateway import deadline

T = TypeVar("T")
LEASE_SECONDS = 30.0  # the longest a hold may last without a budget to bound it
RELEASE_SECONDS = 1.0  # and past what the holder may take: time to give it back


def lease(grace: float = 0.0) -> float:
    """How long a hold taken now may last: the budget left, the ``grace`` a write held by it
    may run on past its caller's deadline (`past_deadline`), and a second to release it."""
    budget = deadline.current()
    if budget is None:
        return LEASE_SECONDS + grace
    return max(budget.remaining(), 0.0) + grace + RELEASE_SECONDS


async def past_deadline(start: Callable[[], Awaitable[T]], grace: float) -> T:
    """Run under the caller's budget plus ``grace`` (one attempt's time): a write sent just
    before the caller's deadline still gets its answer, so what it made is known. The budget is
    seen through: a call that cannot be repeated waits for its answer as long as it lasts,
    rather than give up at one attempt's cap (`deadline.Deadline.attempt_timeout`)."""
    budget = deadline.current()
    left = budget.remaining() if budget is not None else 0.0
    margin = budget.margin if budget else 0.1
    with deadline.budget(max(left, 0.0) + grace, margin, seen_through=True):
        return await start()
