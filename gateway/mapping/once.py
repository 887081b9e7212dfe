"""Small helpers for doing a write once: a shared write runs on when its callers stop waiting, for
as long as one more attempt may take (identical calls in flight share it through
`gateway.cache.SingleFlight`); how long a hold on a key may last; and what the writes of
cases and of customers are built on (`Writes`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from gateway import deadline
from gateway.cache import SingleFlight
from gateway.locks import KeyedLocks
from gateway.mapping.engine import Engine
from gateway.recall import Recall

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


class Writes:
    """What `CaseWrites` and `CustomerWrites` are made of. ``locks``: one writer per record
    (and per create); ``recall``: what creates made, for their repeats; ``grace_seconds``: how
    long a create may run on past its caller's deadline (one attempt's time), so that what it
    made is known to its repeat; ``clock``: seconds since the epoch, as the CRM's timestamps
    count them."""

    def __init__(
        self,
        engine: Engine,
        *,
        locks: KeyedLocks,
        recall: Recall,
        grace_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.locks, self.recall, self.grace_seconds = locks, recall, grace_seconds
        self.clock = clock
        self._inflight: SingleFlight[dict[str, Any]] = SingleFlight()

    def in_flight(self) -> list[asyncio.Task[dict[str, Any]]]:
        """The creates running now, some of them past their callers' deadlines for their
        grace: a stopping process waits for them (`gateway.serving`)."""
        return self._inflight.running()
