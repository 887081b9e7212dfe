"""Per-request budgets. Every upstream attempt takes its timeout from what is left, so the
gateway answers (504 at worst) before the caller's own limit, even when the upstream hangs."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar

from gateway.errors import DeadlineExceeded


class Deadline:
    __slots__ = ("_time", "end", "margin", "seconds", "seen_through")

    def __init__(self, seconds: float, margin: float, *, seen_through: bool = False) -> None:
        """``seen_through``: the budget of a write seen through past its caller's deadline
        (`gateway.mapping.once.past_deadline`), in which an attempt that cannot be repeated
        may wait for its answer as long as the budget lasts."""
        self.seconds = seconds
        self.margin = margin
        self.seen_through = seen_through
        self._time = asyncio.get_running_loop().time  # the loop's clock, read often
        self.end = self._time() + seconds

    def remaining(self) -> float:
        return self.end - self._time()

    def attempt_timeout(self, cap: float, *, repeatable: bool = True) -> float:
        """The timeout for one upstream attempt: the cap, or less when the budget is short.
        An attempt that cannot be repeated (a create without a key), in a budget seen through,
        is not cut at the cap: given up, its outcome would be unknown, and the CRM may have
        made what it asked for (docs/behaviour.md §1.4)."""
        left = self.remaining() - self.margin
        if left <= 0:
            raise DeadlineExceeded(detail="budget spent before the upstream call").unapplied()
        return left if self.seen_through and not repeatable else min(cap, left)


_current: ContextVar[Deadline | None] = ContextVar("deadline", default=None)


def current() -> Deadline | None:
    return _current.get()


def left() -> float | None:
    """What the current budget leaves for upstream work (its margin kept); None: no budget."""
    budget = _current.get()
    return None if budget is None else budget.remaining() - budget.margin


class _Current:
    """The deadline, current inside ``with`` (a class: a generator-based context manager
    costs more than the rest of a cached answer's budget)."""

    __slots__ = ("_deadline", "_token")

    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline

    def __enter__(self) -> Deadline:
        self._token = _current.set(self._deadline)
        return self._deadline

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


def budget(seconds: float, margin: float, *, seen_through: bool = False) -> _Current:
    """``with budget(s, m) as d``: d is the current deadline inside."""
    return _Current(Deadline(seconds, margin, seen_through=seen_through))
