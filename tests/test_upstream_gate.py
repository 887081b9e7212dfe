"""The rate gate and the in-flight slot, with an injected clock: holds learned from answers, for
the account or for one scope only; waits that fit the budget, 503 at once for those that do
not; and the cap on calls in flight."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import DEFAULT_RETRY, FakeClock, answer

from gateway import deadline
from gateway.errors import DeadlineExceeded, UpstreamUnavailable
from gateway.exchange import Response
from gateway.upstream.call import Call
from gateway.upstream.gate import RateGate
from gateway.upstream.limits import RateLimits
from gateway.upstream.shared import LocalHolds


def remaining_says_narrow(resp: Response) -> bool:
    return int(resp.headers.get("X-Rate-Limit-Remaining", "0")) > 0


LIMITS = RateLimits(narrow=remaining_says_narrow)


def call(method: str, path: str) -> Call:
    return Call(method, path, path, scope=LIMITS.scope(method, path, path))


PUT_1 = call("PUT", "/users/1")
PUT_2 = call("PUT", "/users/2")
GET_1 = call("GET", "/users/1")


def gate(clock: FakeClock, max_in_flight: int = 20) -> RateGate:
    return RateGate(
        max_in_flight, limits=LIMITS, holds=LocalHolds(clock), retry=DEFAULT_RETRY, clock=clock
    )


async def pass_through(g: RateGate, c: Call) -> None:
    async with g.admit(c):
        pass


@pytest.mark.parametrize("other", [PUT_1, PUT_2, GET_1])
async def test_an_account_limit_holds_every_call(other: Call) -> None:
    clock = FakeClock()
    g = gate(clock)
    await g.observe(PUT_1, answer(429, Retry_After="5", X_Rate_Limit_Remaining="0"))
    await pass_through(g, other)
    assert clock.slept == [5]


async def test_a_narrow_limit_holds_only_its_scope() -> None:
    clock = FakeClock()
    g = gate(clock)
    await g.observe(PUT_1, answer(429, Retry_After="50", X_Rate_Limit_Remaining="399"))
    await pass_through(g, PUT_2)  # another record's writes
    await pass_through(g, GET_1)  # this record's reads
    assert clock.slept == []
    await pass_through(g, PUT_1)
    assert clock.slept == [50]


async def test_without_a_rule_every_limit_is_account_wide() -> None:
    clock = FakeClock()
    g = RateGate(20, retry=DEFAULT_RETRY, clock=clock, holds=LocalHolds(clock))
    await g.observe(PUT_1, answer(429, Retry_After="3", X_Rate_Limit_Remaining="399"))
    await pass_through(g, GET_1)
    assert clock.slept == [3]


async def test_a_hold_past_the_budget_is_503_at_once() -> None:
    clock = FakeClock()
    g = gate(clock)
    await g.observe(PUT_1, answer(429, Retry_After="30", X_Rate_Limit_Remaining="9"))
    with deadline.budget(7.2, 0.1), pytest.raises(UpstreamUnavailable) as raised:
        await pass_through(g, PUT_1)
    assert raised.value.headers == {"Retry-After": "30"} and clock.slept == []
    with deadline.budget(7.2, 0.1):
        await pass_through(g, PUT_2)  # its neighbour is not held


async def test_a_429_without_a_readable_wait_holds_for_the_longest_backoff() -> None:
    clock = FakeClock()
    g = gate(clock)
    await g.observe(GET_1, answer(429, Retry_After="whenever"))
    await pass_through(g, PUT_2)
    assert clock.slept == [DEFAULT_RETRY.backoff_max_seconds]


@pytest.mark.parametrize(
    ("headers", "held"),
    [
        ({"ratelimit_remaining": "0", "ratelimit_reset": "7"}, 7),
        ({"X_Rate_Limit_Remaining": "0"}, 1.0),  # no reset given: a second
        ({"X_Rate_Limit_Remaining": "12"}, None),
        ({}, None),
    ],
)
async def test_a_quota_with_none_left_holds_until_its_reset(
    headers: dict[str, str], held: float | None
) -> None:
    clock = FakeClock()
    g = gate(clock)
    await g.observe(GET_1, answer(200, {}, **headers))
    await pass_through(g, PUT_2)
    assert clock.slept == ([] if held is None else [held])


async def test_a_longer_hold_is_kept() -> None:
    clock = FakeClock()
    g = gate(clock)
    await g.observe(GET_1, answer(429, Retry_After="10"))
    await g.observe(GET_1, answer(429, Retry_After="2"))
    await pass_through(g, GET_1)
    assert clock.slept == [10]


async def test_calls_in_flight_are_capped() -> None:
    g = gate(FakeClock(), max_in_flight=2)
    inside = peak = 0
    release = asyncio.Event()

    async def one() -> None:
        nonlocal inside, peak
        async with g.admit(GET_1):
            inside += 1
            peak = max(peak, inside)
            await release.wait()
            inside -= 1

    tasks = [asyncio.create_task(one()) for _ in range(5)]
    await asyncio.sleep(0.01)
    assert inside == 2
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 2


async def test_no_slot_within_the_budget_is_a_timeout() -> None:
    g = gate(FakeClock(), max_in_flight=1)
    async with g.admit(GET_1):
        with deadline.budget(0.15, 0.1), pytest.raises(DeadlineExceeded) as raised:
            await pass_through(g, PUT_2)
    assert raised.value.not_applied  # it never went out
    await pass_through(g, PUT_2)  # the slot came back


async def queued_behind_a_429(g: RateGate, retry_after: str) -> tuple[asyncio.Task[None], Any]:
    """A call in flight, another queued for the one slot; the one in flight is answered 429
    (account-wide) and lets its slot go. The queued call's task, and a probe of its slot."""
    answered = asyncio.Event()

    async def in_flight() -> None:
        async with g.admit(GET_1):
            await answered.wait()
        await g.observe(GET_1, answer(429, Retry_After=retry_after, X_Rate_Limit_Remaining="0"))

    first = asyncio.create_task(in_flight())
    await asyncio.sleep(0)
    queued = asyncio.create_task(pass_through(g, PUT_2))
    await asyncio.sleep(0)
    assert g._slots.locked()  # it waits for the slot, having seen no hold
    answered.set()
    await first
    return queued, g._slots


async def test_a_call_queued_for_a_slot_waits_out_the_hold_learned_meanwhile() -> None:
    clock = FakeClock()
    g = gate(clock, max_in_flight=1)
    queued, _ = await queued_behind_a_429(g, "5")
    await queued
    assert clock.slept == [5]  # after the hold, not into it


async def test_a_call_queued_for_a_slot_is_503_when_the_hold_learned_meanwhile_is_too_long() -> (
    None
):
    clock = FakeClock()
    g = gate(clock, max_in_flight=1)
    with deadline.budget(7.2, 0.1):
        queued, slots = await queued_behind_a_429(g, "30")
        with pytest.raises(UpstreamUnavailable) as raised:
            await queued
    assert raised.value.headers == {"Retry-After": "30"} and clock.slept == []
    assert not slots.locked()  # its slot went back


async def test_a_hold_that_grows_while_waiting_is_waited_out_too() -> None:
    clock = FakeClock()
    g = gate(clock)
    await g.observe(GET_1, answer(429, Retry_After="2"))
    original = clock.sleep

    async def sleep(seconds: float) -> None:  # a longer hold arrives during the first wait
        clock.sleep = original  # type: ignore[method-assign]
        await g.observe(GET_1, answer(429, Retry_After="5"))
        await original(seconds)

    clock.sleep = sleep  # type: ignore[method-assign]
    await pass_through(g, PUT_2)
    assert clock.slept == [2, 3]  # until the longer hold ends, not a call into it
