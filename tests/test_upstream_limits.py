"""Reading rate limits: Retry-After in both forms, quota headers, and what a limit holds."""

from __future__ import annotations

import email.utils

import pytest
from conftest import answer

from gateway.upstream.call import Call
from gateway.upstream.limits import ACCOUNT, RateLimits, asked_wait, keys, parse_retry_after


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2", ceiling=60) == 2
    assert parse_retry_after(" 1.5 ", ceiling=60) == 1.5
    assert parse_retry_after("999", ceiling=60) == 60
    assert parse_retry_after("-3", ceiling=60) == 0
    assert parse_retry_after("nan", ceiling=60) is None
    assert parse_retry_after(None, ceiling=60) is None
    assert parse_retry_after("soon", ceiling=60) is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, ceiling=60, now=1_000_000) == pytest.approx(30)
    assert parse_retry_after(date, ceiling=60, now=2_000_000) == 0  # already past


def test_the_wait_an_answer_asks() -> None:
    def wait(resp: object) -> float | None:
        return asked_wait(resp, ceiling=60, default=1.0, now=0)  # type: ignore[arg-type]

    assert wait(answer(429, Retry_After="7")) == 7
    assert wait(answer(429)) == 1.0
    assert wait(answer(200, {}, ratelimit_remaining="0", ratelimit_reset="41")) == 41
    assert wait(answer(200, {}, ratelimit_remaining=" 0 ")) == 1.0
    assert wait(answer(200, {}, ratelimit_remaining="3")) is None
    assert wait(answer(200, {})) is None
    assert wait(answer(503, Retry_After="7")) is None  # a 503 limits nothing; it is retried


def test_what_a_limit_holds() -> None:
    limits = RateLimits(narrow=lambda resp: resp.headers.get("X-Quota") == "left")
    call = Call("PUT", "/users/7", "/users/{{ id }}", scope=limits.scope("PUT", "/users/7", ""))
    assert call.scope == "PUT /users/7"  # the default scope: this method on this record
    assert limits.key(call, answer(429, X_Quota="left")) == "scope:PUT /users/7"
    assert limits.key(call, answer(429)) == ACCOUNT
    assert keys(call) == (ACCOUNT, "scope:PUT /users/7")
    assert RateLimits().key(call, answer(429, X_Quota="left")) == ACCOUNT
