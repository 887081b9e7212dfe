"""How the gateway treats a struggling upstream, inside each request's budget:

- retries with exponential backoff and jitter (aiohttp-retry's JitterRetry schedule), only for
  calls that are safe to repeat, and only when the budget left can hold another attempt;
- a shared rate gate: a 429's ``Retry-After`` (or an exhausted ``ratelimit-remaining``) holds
  every call to that upstream until the wait is over, and a wait past the budget is 503 at once;
- a cap on calls in flight, so a burst from the caller does not become a 429 storm;
- a circuit breaker: after N consecutive failures, fail fast for a cool-down, then one probe.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp_retry import JitterRetry

from gateway import logs, metrics
from gateway.deadline import Deadline
from gateway.errors import DeadlineExceeded, UpstreamUnavailable


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 3
    backoff_start_seconds: float = 0.1
    backoff_max_seconds: float = 1.0
    max_retry_after_seconds: float = 60.0
    min_attempt_seconds: float = 0.25
    max_in_flight: int = 20
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 30.0


class RetryPolicy:
    def __init__(self, settings: RetrySettings) -> None:
        self.settings = settings
        self._schedule = JitterRetry(
            attempts=settings.attempts,
            start_timeout=settings.backoff_start_seconds,
            max_timeout=settings.backoff_max_seconds,
            factor=2.0,
            random_interval_size=0.3,  # jitter of at most 0.09 s: spread, not delay
            statuses={500, 502, 503, 504},
        )
        self.retry_statuses = frozenset(self._schedule.statuses)

    @property
    def attempts(self) -> int:
        return self.settings.attempts

    def backoff(self, attempt: int) -> float:
        return float(self._schedule.get_timeout(attempt - 1))

    def fits(self, budget: Deadline | None, wait: float) -> bool:
        """Can the budget hold a wait and then one more useful attempt?"""
        if budget is None:
            return True
        return budget.remaining() - budget.margin - wait >= self.settings.min_attempt_seconds


def parse_retry_after(
    value: str | None, *, ceiling: float, now: float | None = None
) -> float | None:
    """Seconds to wait, from delta-seconds or an HTTP date; clamped to [0, ceiling]. None when
    missing or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (now if now is not None else datetime.now(UTC).timestamp())
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), ceiling)


class RateGate:
    """One per upstream: holds calls while the upstream asked us to wait, and caps the number
    of calls in flight."""

    def __init__(self, max_in_flight: int) -> None:
        self.not_before = 0.0  # monotonic time before which no call starts
        self._slots = asyncio.Semaphore(max_in_flight)

    def hold(self, seconds: float) -> None:
        self.not_before = max(self.not_before, time.monotonic() + seconds)

    def observe(self, headers: Mapping[str, str], ceiling: float) -> None:
        """Rate-limit headers (`ratelimit-*`, `X-Rate-Limit-*`): none left, wait for the reset."""
        for remaining_key, reset_key in (
            ("ratelimit-remaining", "ratelimit-reset"),
            ("X-Rate-Limit-Remaining", "ratelimit-reset"),
        ):
            remaining = headers.get(remaining_key)
            if remaining is not None and remaining.strip() == "0":
                reset = parse_retry_after(headers.get(reset_key), ceiling=ceiling)
                self.hold(reset if reset is not None else 1.0)
                return

    async def wait(self, budget: Deadline | None, policy: RetryPolicy) -> None:
        """Wait out a hold that fits the budget; answer 503 at once for one that does not."""
        wait = self.not_before - time.monotonic()
        if wait <= 0:
            return
        if not policy.fits(budget, wait):
            raise UpstreamUnavailable(
                "The CRM asked us to slow down. Please try again in a moment.",
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                detail=f"rate limited for {wait:.1f}s more",
            )
        await asyncio.sleep(wait)

    async def slot(self, budget: Deadline | None) -> None:
        """Take a slot among the calls in flight, waiting at most what the budget allows."""
        if budget is None:
            await self._slots.acquire()
            return
        try:
            await asyncio.wait_for(
                self._slots.acquire(), max(budget.remaining() - budget.margin, 0)
            )
        except TimeoutError:
            raise DeadlineExceeded(detail="no upstream slot free within the budget") from None

    def release(self) -> None:
        self._slots.release()


class CircuitBreaker:
    """Closed: calls pass. After `failures` consecutive failures: open, calls fail fast for
    `cooldown` seconds. Then half-open: one probe passes; its outcome closes or reopens."""

    def __init__(self, name: str, failures: int, cooldown: float) -> None:
        self.name, self.failures, self.cooldown = name, failures, cooldown
        self._count = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() - self._opened_at >= self.cooldown else "open"

    def before(self) -> None:
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._probing:
            self._probing = True
            metrics.CIRCUIT.labels(self.name).set(1)
            return
        assert self._opened_at is not None
        left = self.cooldown - (time.monotonic() - self._opened_at)
        raise UpstreamUnavailable(
            headers={"Retry-After": str(max(1, round(left + 0.5)))}, detail="circuit open"
        )

    def success(self) -> None:
        if self._opened_at is not None:
            logs.get().info("circuit_closed", upstream=self.name)
            metrics.CIRCUIT.labels(self.name).set(0)
        self._count, self._opened_at, self._probing = 0, None, False

    def failure(self) -> None:
        self._count += 1
        if self._probing or (self._opened_at is None and self._count >= self.failures):
            self._opened_at, self._probing = time.monotonic(), False
            logs.get().error("circuit_open", upstream=self.name, failures=self._count)
            metrics.CIRCUIT.labels(self.name).set(2)
