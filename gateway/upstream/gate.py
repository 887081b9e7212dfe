"""The rate gate and the in-flight slot: a call starts when no rate limit holds it (a hold that
does not fit the budget is 503 at once) and one of `max_in_flight` slots is free, so a burst
from the callers does not become a 429 storm. Answers teach it the holds."""

from __future__ import annotations

import asyncio

from gateway import deadline
from gateway.errors import DeadlineExceeded, UpstreamUnavailable
from gateway.exchange import Response
from gateway.upstream.call import Call
from gateway.upstream.clock import SYSTEM, Clock
from gateway.upstream.limits import RateLimits, asked_wait, keys
from gateway.upstream.settings import RetrySettings
from gateway.upstream.shared import Holds, LocalHolds


class RateGate:
    def __init__(
        self,
        max_in_flight: int,
        *,
        retry: RetrySettings,
        limits: RateLimits | None = None,
        holds: Holds | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.limits = limits or RateLimits()
        self.holds = holds if holds is not None else LocalHolds(clock)
        self.settings = retry
        self.clock = clock
        self._slots = asyncio.Semaphore(max_in_flight)

    def admit(self, call: Call) -> _Admission:
        """``async with gate.admit(call)``: wait out the holds on this call if they fit the
        budget, then hold a slot, and look at the holds again: a call queued for a slot while
        the calls in flight learned a limit must not go and ask for a 429 of its own (a burst
        would reach the CRM whole)."""
        return _Admission(self, call)

    async def _wait_out_holds(self, call: Call) -> None:
        """Sleep until no hold covers the call (a hold may grow meanwhile), or raise 503 at
        once when a hold does not fit the budget."""
        while (wait := await self.holds.until(keys(call)) - self.clock.time()) > 0:
            if not self.settings.fits(deadline.left(), wait):
                raise UpstreamUnavailable.rate_limited(
                    wait, detail=f"{call.method} {call.route}: rate limited for {wait:.1f}s more"
                ).unapplied()
            await self.clock.sleep(wait)

    async def observe(self, call: Call, resp: Response) -> None:
        """An answer that limits calls (a 429, a quota with none left) holds what it limits."""
        settings = self.settings
        now = self.clock.time()
        wait = asked_wait(
            resp, ceiling=settings.max_retry_after_seconds, default=settings.backoff_max_seconds,
            now=now,
        )  # fmt: skip
        if wait is not None and wait > 0:
            await self.holds.hold(self.limits.key(call, resp), now + wait)

    async def _take_slot(self, left: float | None) -> bool:
        """A slot among the calls in flight, waiting at most what the budget allows. True
        when it had to wait for one (time passed: the holds may have changed)."""
        queued = self._slots.locked()
        if left is None or not queued:  # free: taken at once, no timer needed
            await self._slots.acquire()
            return queued
        try:
            # asyncio.timeout, not wait_for: wait_for runs the wait as a task of its own.
            async with asyncio.timeout(max(left, 0)):
                await self._slots.acquire()
        except TimeoutError:
            raise DeadlineExceeded(
                detail="no upstream slot free within the budget"
            ).unapplied() from None
        return True


class _Admission:
    """A class rather than an async generator: every upstream attempt passes here."""

    __slots__ = ("_call", "_gate")

    def __init__(self, gate: RateGate, call: Call) -> None:
        self._gate, self._call = gate, call

    async def __aenter__(self) -> None:
        gate, call = self._gate, self._call
        await gate._wait_out_holds(call)
        queued = await gate._take_slot(deadline.left())
        if queued:  # holding the slot: after the hold, no more go than the slots
            try:
                await gate._wait_out_holds(call)
            except BaseException:
                gate._slots.release()
                raise

    async def __aexit__(self, *exc: object) -> None:
        self._gate._slots.release()
