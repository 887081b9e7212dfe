"""The retry policy: what it decides for each outcome, and `retrying`, which runs attempts by
it; attempts are fakes and time is an injected clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from conftest import FakeClock, answer, events

from gateway import deadline
from gateway.errors import (
    AttemptFailed,
    AttemptTimedOut,
    BadGateway,
    DeadlineExceeded,
    UpstreamUnavailable,
)
from gateway.exchange import Response
from gateway.upstream.call import Call
from gateway.upstream.policy import RetryPolicy, retrying
from gateway.upstream.settings import RetrySettings

SETTINGS = RetrySettings(
    attempts=3,
    backoff_start_seconds=0.1,
    backoff_max_seconds=1.0,
    max_retry_after_seconds=60,
    min_attempt_seconds=0.25,
)
READ = Call("GET", "/users/1", "/users/{{ id }}", retry_safe=True)
WRITE = Call("POST", "/users", "/users")


def policy(clock: FakeClock | None = None) -> RetryPolicy:
    return RetryPolicy(SETTINGS, clock or FakeClock())


@pytest.mark.parametrize(
    ("outcome", "why"),
    [
        (AttemptTimedOut(), "timeout"),
        (AttemptFailed(cause="ClientConnectionError"), "transport"),
        (AttemptFailed(cause="garbage"), "transport"),
        (answer(500), "500"),
        (answer(503), "503"),
    ],
)
def test_failures_are_retried_only_when_safe(outcome: Any, why: str) -> None:
    p = policy()
    safe = p.decide(outcome, READ, left=5.0)
    assert safe.retry and safe.why == why and 0.1 <= safe.wait <= 0.2
    assert not p.decide(outcome, WRITE, left=5.0).retry  # it may have been applied
    assert not p.decide(outcome, replace(READ, attempt=3), left=5.0).retry  # attempts used up
    assert not p.decide(outcome, READ, left=0.3).retry  # no room for the wait and an attempt


def test_backoff_grows_to_its_cap() -> None:
    p = policy()
    waits = [p.backoff(n) for n in range(1, 7)]
    assert 0.1 <= waits[0] <= 0.2 and 0.2 <= waits[1] <= 0.3 and waits[-1] <= 1.09


@pytest.mark.parametrize("outcome", [answer(200), answer(404), answer(422), answer(401)])
def test_answers_are_final(outcome: Response) -> None:
    decision = policy().decide(outcome, READ, left=5.0)
    assert not decision.retry and decision.why == "answered"


@pytest.mark.parametrize("error", [DeadlineExceeded(), BadGateway(), UpstreamUnavailable()])
def test_other_errors_are_final(error: Exception) -> None:
    assert not policy().decide(error, READ, left=5.0).retry


def test_a_429_is_retried_for_any_method_after_the_wait_it_asks() -> None:
    p = policy()
    decision = p.decide(answer(429, Retry_After="2"), WRITE, left=5.0)
    assert decision.retry and decision.wait == 2 and decision.why == "429"
    past = p.decide(answer(429, Retry_After="120"), WRITE, left=5.0)
    assert not past.retry and past.wait == 60  # clamped; the caller is told to wait that long
    missing = p.decide(answer(429, Retry_After="soon"), WRITE, left=5.0)
    assert missing.retry and missing.wait == 1.0  # no readable wait: the longest backoff


def test_an_http_date_is_read_with_the_injected_clock() -> None:
    clock = FakeClock(start=1_000_000)
    decision = policy(clock).decide(
        answer(429, Retry_After="Mon, 12 Jan 1970 13:46:43 GMT"), READ, left=10.0
    )
    assert decision.wait == pytest.approx(3.0)


async def test_retrying_until_an_answer() -> None:
    clock = FakeClock()
    outcomes: list[Any] = [AttemptTimedOut(), answer(502), answer(200, {"ok": True})]
    seen: list[Call] = []

    async def attempt(call: Call) -> Response:
        seen.append(call)
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[no-any-return]

    resp = await retrying(policy(clock), READ, attempt)
    assert resp.data == {"ok": True}
    assert [(c.attempt, c.retry_reason) for c in seen] == [(1, None), (2, "timeout"), (3, "502")]
    assert len(clock.slept) == 2


async def test_retrying_to_exhaustion_raises_the_last_error_or_returns_the_last_answer(
    capsys: Any,
) -> None:
    async def timing_out(call: Call) -> Response:
        raise AttemptTimedOut()

    with pytest.raises(AttemptTimedOut):
        await retrying(policy(), READ, timing_out)

    async def failing(call: Call) -> Response:
        return answer(500)

    assert (await retrying(policy(), READ, failing)).status == 500  # the engine translates it
    retries = [e for e in events(capsys.readouterr().out) if e["event"] == "upstream_retry"]
    assert [e["attempt"] for e in retries] == [1, 2, 1, 2]


async def test_a_429_that_does_not_fit_is_503_with_retry_after() -> None:
    calls = 0

    async def limited(call: Call) -> Response:
        nonlocal calls
        calls += 1
        return answer(429, Retry_After="30")

    with deadline.budget(2.0, 0.1), pytest.raises(UpstreamUnavailable) as raised:
        await retrying(policy(), READ, limited)
    assert calls == 1 and raised.value.headers == {"Retry-After": "30"}


async def test_a_429_to_the_last_attempt_is_503() -> None:
    async def limited(call: Call) -> Response:
        return answer(429, Retry_After="0")

    with pytest.raises(UpstreamUnavailable) as raised:
        await retrying(policy(), WRITE, limited)
    assert raised.value.headers == {"Retry-After": "1"}
