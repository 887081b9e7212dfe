"""The circuit breaker. It counts requests, not attempts (a request that used up its retries is
one failure), over a sliding window, and opens when at least `failure_rate` of at least
`min_requests` requests failed. Open, calls fail fast with 503 for `cooldown_seconds`; then one
probe at a time goes through. Every request's outcome is recorded on its way out, whatever the
way (docs/behaviour.md §4), so a probe always ends: an answer closes the circuit, a failure
opens it again, and an outcome that says nothing about the CRM's health (a 429, a cancelled
call) lets the next call probe."""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from types import TracebackType

from gateway import deadline, logs, metrics
from gateway.errors import (
    BadGateway,
    DeadlineExceeded,
    MappingFailed,
    UpstreamUnavailable,
    retry_after,
)
from gateway.exchange import Response
from gateway.upstream.clock import SYSTEM, Clock
from gateway.upstream.settings import BreakerSettings


class Verdict(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


def verdict(answer: Response | None, exc: BaseException | None) -> Verdict:
    """What a request's outcome says about the CRM's health."""
    if exc is None:
        if answer is None or answer.status == 429:
            return Verdict.NEUTRAL  # rate limited: alive, and the rate gate handles it
        return Verdict.FAILURE if answer.status >= 500 else Verdict.SUCCESS
    if isinstance(exc, asyncio.CancelledError):
        # Cancelled when the request's budget ran out: the CRM did not answer in time.
        left = deadline.left()
        return Verdict.FAILURE if left is not None and left <= 0 else Verdict.NEUTRAL
    if isinstance(exc, MappingFailed):
        return Verdict.NEUTRAL  # the mapping could not read an answer: not the CRM's health
    if isinstance(exc, DeadlineExceeded | BadGateway):
        return Verdict.FAILURE  # no answer in time, reset, refused, garbage, refresh failed
    return Verdict.NEUTRAL  # a wait past the budget (UpstreamUnavailable), or our own bug


class Breaker:
    def __init__(self, name: str, settings: BreakerSettings, clock: Clock = SYSTEM) -> None:
        self.name, self.settings, self.clock = name, settings, clock
        self._width = settings.window_seconds / 30  # buckets of the sliding window
        self._buckets: deque[list[float]] = deque()  # [start, requests, failures]
        self.requests = self.failures = 0  # in the window
        self._opened_at: float | None = None
        self._probing = False
        self.up: bool | None = None  # the CRM answers, as last seen (None: not seen yet)

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        waited = self.clock.monotonic() - self._opened_at
        return "half_open" if waited >= self.settings.cooldown_seconds else "open"

    def guard(self) -> Guard:
        """``with breaker.guard() as g: g.answer = await ...``: admits the request or raises
        503, and records its outcome however it ends."""
        return Guard(self)

    def admit(self) -> bool:
        """Admit a request (True: as the probe), or raise UpstreamUnavailable."""
        state = self.state
        if state == "closed":
            return False
        if state == "half_open" and not self._probing:
            self._probing = True
            metrics.CIRCUIT.labels(self.name).set(1)
            return True
        assert self._opened_at is not None
        left = self.settings.cooldown_seconds - (self.clock.monotonic() - self._opened_at)
        raise UpstreamUnavailable(headers={"Retry-After": retry_after(left)}, detail="circuit open")

    def saw(self, up: bool) -> None:
        """The CRM answered (a readiness probe, a request, the circuit closing) or did not (a
        failed probe, the circuit opening): `crm_gateway_upstream_up`."""
        if self.up is not up:
            self.up = up
            metrics.UPSTREAM_UP.labels(self.name).set(1 if up else 0)

    def record(self, probe: bool, outcome: Verdict) -> None:
        if outcome is Verdict.SUCCESS and self.up is not True:
            self.saw(True)
        if probe:
            self._probing = False
            if outcome is Verdict.SUCCESS:
                self._close()
            elif outcome is Verdict.FAILURE:
                self._open()
            return  # neutral: still half open, and the next call probes
        if self._opened_at is not None or outcome is Verdict.NEUTRAL:
            return  # a request admitted before the circuit opened tells nothing new
        self._count(outcome is Verdict.FAILURE)
        s = self.settings
        if self.requests >= s.min_requests and self.failures >= s.failure_rate * self.requests:
            self._open()

    def _count(self, failed: bool) -> None:
        now = self.clock.monotonic()
        while self._buckets and self._buckets[0][0] <= now - self.settings.window_seconds:
            _, requests, failures = self._buckets.popleft()
            self.requests -= int(requests)
            self.failures -= int(failures)
        if not self._buckets or self._buckets[-1][0] + self._width <= now:
            self._buckets.append([now, 0, 0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        self.requests += 1
        self.failures += failed

    def _open(self) -> None:
        self._opened_at = self.clock.monotonic()
        logs.get().error(
            "circuit_open",
            upstream=self.name,
            failures=self.failures,
            requests=self.requests,
            cooldown_seconds=self.settings.cooldown_seconds,
        )
        metrics.CIRCUIT.labels(self.name).set(2)
        self.saw(False)

    def _close(self) -> None:
        self._opened_at = None
        self._buckets.clear()
        self.requests = self.failures = 0
        logs.get().info("circuit_closed", upstream=self.name)
        metrics.CIRCUIT.labels(self.name).set(0)
        self.saw(True)


class Guard:
    def __init__(self, breaker: Breaker) -> None:
        self.breaker = breaker
        self.answer: Response | None = None
        self._probe = False

    def __enter__(self) -> Guard:
        self._probe = self.breaker.admit()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.breaker.record(self._probe, verdict(self.answer, exc))
