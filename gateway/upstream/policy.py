"""The retry policy: it looks at the outcome of one attempt and says whether to try again,
after what wait, and why; `retrying` runs attempts by it. Only calls that cannot be applied
twice are repeated, except after a 429 (not applied), and only while the budget can hold the
wait and one more attempt. Backoff is exponential with jitter (aiohttp-retry's schedule)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from aiohttp_retry import JitterRetry

from gateway import deadline, logs
from gateway.errors import AttemptFailed, AttemptTimedOut, GatewayError, UpstreamUnavailable
from gateway.exchange import Response
from gateway.upstream.call import Call, Send
from gateway.upstream.clock import SYSTEM, Clock
from gateway.upstream.limits import parse_retry_after
from gateway.upstream.settings import RetrySettings

Outcome = Response | GatewayError


@dataclass(frozen=True)
class Decision:
    retry: bool
    wait: float  # before the next attempt; for a 429 not retried, what the caller should wait
    why: str  # "timeout", "transport", "429", "500", ...; "answered" for a final answer


class RetryPolicy:
    def __init__(self, settings: RetrySettings, clock: Clock = SYSTEM) -> None:
        self.settings = settings
        self.clock = clock
        self._schedule = JitterRetry(
            attempts=settings.attempts,
            start_timeout=settings.backoff_start_seconds,
            max_timeout=settings.backoff_max_seconds,
            factor=2.0,
            random_interval_size=0.3,  # jitter of at most 0.09 s: spread, not delay
            statuses={500, 502, 503, 504},
        )
        self.retry_statuses = frozenset(self._schedule.statuses)

    def backoff(self, attempt: int) -> float:
        return float(self._schedule.get_timeout(attempt - 1))

    def decide(self, outcome: Outcome, call: Call, left: float | None) -> Decision:
        """``left``: what the request's budget has left (None: no budget)."""
        more = call.attempt < self.settings.attempts
        if isinstance(outcome, AttemptFailed | AttemptTimedOut):
            wait = self.backoff(call.attempt)
            why = "timeout" if isinstance(outcome, AttemptTimedOut) else "transport"
            repeatable = not isinstance(outcome, AttemptFailed) or outcome.repeatable
            again = call.retry_safe and more and repeatable
            return Decision(again and self.settings.fits(left, wait), wait, why)
        if isinstance(outcome, GatewayError):
            return Decision(False, 0.0, "failed")
        if outcome.status == 429:
            # Not applied upstream, so safe to repeat for any method.
            wait = self._asked(outcome)
            return Decision(more and self.settings.fits(left, wait), wait, "429")
        if outcome.status in self.retry_statuses:
            wait = self.backoff(call.attempt)
            fits = self.settings.fits(left, wait)
            return Decision(call.retry_safe and more and fits, wait, str(outcome.status))
        return Decision(False, 0.0, "answered")

    def _asked(self, resp: Response) -> float:
        """A 429's wait: its Retry-After, or the longest backoff when it says none."""
        asked = parse_retry_after(
            resp.headers.get("Retry-After"),
            ceiling=self.settings.max_retry_after_seconds,
            now=self.clock.time(),
        )
        return self.settings.backoff_max_seconds if asked is None else asked


async def retrying(policy: RetryPolicy, call: Call, attempt: Send) -> Response:
    """Attempts until the policy says stop: the last answer, or the error it means."""
    while True:
        try:
            outcome: Outcome = await attempt(call)
        except (AttemptFailed, AttemptTimedOut) as exc:
            outcome = exc
        decision = policy.decide(outcome, call, deadline.left())
        if not decision.retry:
            if isinstance(outcome, GatewayError):
                raise outcome
            if outcome.status == 429:
                retry_after = outcome.headers.get("Retry-After")
                detail = f"{call.method} {call.route} -> 429, Retry-After {retry_after!r}"
                raise UpstreamUnavailable.rate_limited(decision.wait, detail=detail)
            return outcome
        logs.get().info(
            "upstream_retry",
            path=call.route,
            attempt=call.attempt,
            reason=decision.why,
            wait_ms=round(decision.wait * 1000),
        )
        await policy.clock.sleep(decision.wait)
        call = replace(call, attempt=call.attempt + 1, retry_reason=decision.why)
