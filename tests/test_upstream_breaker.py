"""The circuit breaker on its own, with an injected clock: it counts requests over a sliding
window, opens on a failure rate with a minimum number of requests, lets one probe through at
a time, and records an outcome on every way out of the guard (docs/behaviour.md §4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import FakeClock, answer, events

from gateway import deadline
from gateway.errors import (
    AttemptFailed,
    AttemptTimedOut,
    BadGateway,
    DeadlineExceeded,
    MappingFailed,
    UpstreamUnavailable,
)
from gateway.upstream.breaker import Breaker, Verdict, verdict
from gateway.upstream.settings import BreakerSettings

SETTINGS = BreakerSettings(failure_rate=0.5, min_requests=4, window_seconds=30, cooldown_seconds=10)


def breaker(clock: FakeClock, settings: BreakerSettings = SETTINGS) -> Breaker:
    return Breaker("crm", settings, clock)


def run(b: Breaker, outcome: Any) -> None:
    """One request through the guard, ending with an answer or an exception."""
    try:
        with b.guard() as guard:
            if isinstance(outcome, BaseException):
                raise outcome
            guard.answer = outcome
    except (Exception, asyncio.CancelledError):
        pass


def test_what_each_outcome_says() -> None:
    assert verdict(answer(200), None) is Verdict.SUCCESS
    assert verdict(answer(404), None) is Verdict.SUCCESS  # the CRM answered
    assert verdict(answer(401), None) is Verdict.SUCCESS
    assert verdict(answer(500), None) is Verdict.FAILURE
    assert verdict(answer(503), None) is Verdict.FAILURE
    assert verdict(answer(429), None) is Verdict.NEUTRAL  # alive, and asking us to wait
    assert verdict(None, DeadlineExceeded()) is Verdict.FAILURE  # hung past the budget
    assert verdict(None, AttemptTimedOut()) is Verdict.FAILURE
    assert verdict(None, AttemptFailed(cause="ClientConnectionError")) is Verdict.FAILURE
    assert verdict(None, BadGateway()) is Verdict.FAILURE  # e.g. a token refresh that failed
    assert verdict(None, UpstreamUnavailable()) is Verdict.NEUTRAL  # a 429 wait past budget
    assert verdict(None, asyncio.CancelledError()) is Verdict.NEUTRAL  # the caller left
    assert verdict(None, MappingFailed()) is Verdict.NEUTRAL  # our bug, not the CRM's


async def test_cancelled_when_the_budget_ran_out_is_a_failure() -> None:
    with deadline.budget(0.01, 0.0):
        await asyncio.sleep(0.02)
        assert verdict(None, asyncio.CancelledError()) is Verdict.FAILURE


def test_opens_on_the_failure_rate_once_there_are_enough_requests() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        run(b, answer(500))  # 3 of 3 failed, but fewer than min_requests
    assert b.state == "closed"
    run(b, answer(200))  # 3 of 4: over 50 %
    assert b.state == "open" and (b.requests, b.failures) == (4, 3)


def test_stays_closed_under_the_rate() -> None:
    b = breaker(FakeClock())
    for outcome in [answer(200), answer(200), answer(500), answer(200), answer(500)] * 4:
        run(b, outcome)  # never more than 40 %
    assert b.state == "closed" and b.requests == 20


def test_exactly_the_rate_opens() -> None:
    b = breaker(FakeClock())
    for outcome in [answer(500), answer(200)] * 2:
        run(b, outcome)
    assert b.state == "open"


def test_neutral_outcomes_are_not_counted() -> None:
    b = breaker(FakeClock())
    for outcome in [answer(429), UpstreamUnavailable(), asyncio.CancelledError()] * 5:
        run(b, outcome)
    assert b.state == "closed" and b.requests == 0


def test_failures_leave_the_window() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        run(b, answer(500))
    clock.advance(31)  # those failures are older than the window now
    run(b, answer(500))
    run(b, answer(200))
    run(b, answer(200))
    assert b.state == "closed" and (b.requests, b.failures) == (3, 1)
    run(b, answer(500))
    assert b.state == "open"  # 2 of 4 in the window


def test_open_fails_fast_with_retry_after_then_lets_one_probe() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        run(b, AttemptTimedOut())
    with pytest.raises(UpstreamUnavailable) as raised:
        b.guard().__enter__()
    assert raised.value.headers["Retry-After"] == "10"  # the cool-down left
    clock.advance(10)
    assert b.state == "half_open"
    probe = b.guard().__enter__()  # the probe
    with pytest.raises(UpstreamUnavailable):
        b.guard().__enter__()  # a second caller while the probe is out
    probe.answer = answer(200)
    probe.__exit__(None, None, None)
    assert b.state == "closed" and b.requests == 0  # closed with a fresh window


def open_and_cool(clock: FakeClock, b: Breaker) -> None:
    for _ in range(4):
        run(b, answer(500))
    clock.advance(10)
    assert b.state == "half_open"


@pytest.mark.parametrize(
    "ending", [DeadlineExceeded(), AttemptTimedOut(), AttemptFailed(cause="x"), answer(502)]
)
def test_a_failed_probe_opens_again_and_the_next_probe_can_close(ending: Any) -> None:
    clock = FakeClock()
    b = breaker(clock)
    open_and_cool(clock, b)
    run(b, ending)
    assert b.state == "open"
    clock.advance(10)
    run(b, answer(200))  # the CRM answers again
    assert b.state == "closed"


@pytest.mark.parametrize(
    "ending", [answer(429), UpstreamUnavailable(), asyncio.CancelledError(), MappingFailed()]
)
def test_a_probe_that_ends_without_a_verdict_lets_the_next_call_probe(ending: Any) -> None:
    clock = FakeClock()
    b = breaker(clock)
    open_and_cool(clock, b)
    run(b, ending)
    assert b.state == "half_open"  # no new cool-down: the next call is the probe
    run(b, answer(200))
    assert b.state == "closed"


async def test_a_probe_cancelled_in_flight_ends() -> None:
    clock = FakeClock()
    b = breaker(clock)
    open_and_cool(clock, b)
    started = asyncio.Event()

    async def hanging_probe() -> None:
        with b.guard():
            started.set()
            await asyncio.Event().wait()  # the CRM never answers

    task = asyncio.create_task(hanging_probe())
    await started.wait()
    with pytest.raises(UpstreamUnavailable):
        b.guard().__enter__()  # the probe is out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    run(b, answer(200))
    assert b.state == "closed"


def test_requests_admitted_before_it_opened_do_not_count_while_open() -> None:
    clock = FakeClock()
    b = breaker(clock)
    late = b.guard().__enter__()  # admitted while closed, answers after the circuit opened
    for _ in range(4):
        run(b, answer(500))
    late.answer = answer(200)
    late.__exit__(None, None, None)
    assert b.state == "open"


def test_open_and_close_are_logged(capsys: Any) -> None:
    clock = FakeClock()
    b = breaker(clock)
    open_and_cool(clock, b)
    run(b, answer(200))
    seen = [e for e in events(capsys.readouterr().out) if e["event"].startswith("circuit_")]
    assert [(e["event"], e["level"]) for e in seen] == [
        ("circuit_open", "error"),
        ("circuit_closed", "info"),
    ]
    assert seen[0]["requests"] == 4 and seen[0]["failures"] == 4
