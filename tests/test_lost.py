"""A create whose answer was lost (gateway/mapping/lost.py): which failures leave its outcome
unknown, what is remembered of it, and which records it may have made by when the CRM says it
made them."""

from __future__ import annotations

import time

import pytest

from gateway.errors import (
    AttemptFailed,
    AttemptTimedOut,
    BadGateway,
    DeadlineExceeded,
    IdempotencyMismatch,
    UpstreamUnavailable,
    ValidationFailed,
)
from gateway.mapping import lost


def test_a_lost_answer_is_an_unknown_outcome_a_refusal_is_not() -> None:
    for error in (
        AttemptTimedOut(),
        DeadlineExceeded(),
        AttemptFailed(cause="ServerDisconnectedError"),
        BadGateway(),  # a 5xx: the CRM, or a proxy in front of it, may have applied it
    ):
        assert lost.unknown(error), error
    for error in (
        ValidationFailed(),  # refused: nothing made
        UpstreamUnavailable(),  # not sent (the circuit, a 429 past the budget)
        IdempotencyMismatch(),  # the key names another request: handled as such
        RuntimeError(),
        # It never went out (no slot, no connection, no budget), or the CRM refused it (a 4xx).
        DeadlineExceeded().unapplied(),
        AttemptFailed(cause="ClientConnectorError").unapplied(),
        BadGateway().unapplied(),
    ):
        assert not lost.unknown(error), error


def test_what_is_remembered_of_it() -> None:
    assert lost.entry(100.0, 160.0) == {"unknown": True, "started": 100.0, "until": 160.0}


@pytest.mark.parametrize(
    ("created", "made"),
    [
        ("2030-01-01T00:00:00Z", True),  # after it began
        ("2030-01-01T00:00:00+01:00", True),
        ("2030-01-01 00:00:00", True),  # no zone: UTC
        ("2020-01-01T00:00:00Z", False),  # long before
        (None, True),  # the CRM does not say: it could be
        ("", True),
        ("yesterday", True),
        (1577836800, True),
    ],
)
def test_a_record_made_before_the_create_began_is_not_what_it_made(
    created: object, made: bool
) -> None:
    began = time.time()
    assert lost.made_since(created, began) is made


def test_the_clocks_may_disagree_by_a_minute() -> None:
    began = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    assert lost.made_since("2027-01-15T07:59:05Z", began)  # 55 s before: the CRM's clock lags
    assert not lost.made_since("2027-01-15T07:58:55Z", began)
