"""A create whose answer was lost (gateway/mapping/lost.py): which failures leave its outcome
unknown, what is remembered of it, and which records it may have made by when the CRM says it
made them."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.errors import (
    AttemptFailed,
    AttemptTimedOut,
    BadGateway,
    DeadlineExceeded,
    IdempotencyMismatch,
    NotFound,
    UpstreamUnavailable,
    ValidationFailed,
)
from gateway.mapping import lost
from gateway.recall import LocalRecall


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


def test_a_refused_or_unsent_create_made_nothing_a_lost_or_cut_one_may_have() -> None:
    for error in (
        ValidationFailed(),  # the CRM refused it
        NotFound(),
        UpstreamUnavailable(),  # never sent
        DeadlineExceeded().unapplied(),
        BadGateway().unapplied(),
        IdempotencyMismatch(),  # the key's earlier request made it, not this one
    ):
        assert lost.not_made(error), error
    for error in (
        AttemptTimedOut(),
        BadGateway(),
        AttemptFailed(cause="ServerDisconnectedError"),
        asyncio.CancelledError(),  # the process stopping under it
        RuntimeError(),
    ):
        assert not lost.not_made(error), error


AHEAD = lost.entry(100.0, 760.0)


async def test_the_unknown_outcome_is_there_while_the_create_is_out() -> None:
    recall, seen = LocalRecall(), []

    async def create() -> str:
        seen.append(await recall.get("customer:k"))
        return "made"

    assert await lost.written_ahead(recall, "customer:k", AHEAD, 60.0, create) == "made"
    assert seen == [AHEAD]
    # Left for the caller to replace with what was made (one write, not two).
    assert await recall.get("customer:k") == AHEAD


@pytest.mark.parametrize(
    ("error", "left"),
    [
        (ValidationFailed(), None),  # refused: nothing to look for, the repeat makes it at once
        (AttemptFailed(cause="ClientConnectorError").unapplied(), None),
        (AttemptTimedOut(), AHEAD),  # may be made: the caller and the repeat look for it
        (BadGateway(), AHEAD),
        (RuntimeError("unforeseen"), AHEAD),
    ],
)
async def test_what_a_failed_create_leaves(error: Exception, left: object) -> None:
    recall = LocalRecall()

    async def create() -> str:
        raise error

    with pytest.raises(type(error)):
        await lost.written_ahead(recall, "case:k", AHEAD, 60.0, create)
    assert await recall.get("case:k") == left


async def test_a_create_cut_off_mid_call_leaves_its_unknown_outcome() -> None:
    """As a process that dies while the call is out: nothing after the call runs."""
    recall, out = LocalRecall(), asyncio.Event()

    async def create() -> str:
        out.set()
        await asyncio.Event().wait()  # the CRM has not answered
        return "never"

    task = asyncio.ensure_future(lost.written_ahead(recall, "customer:k", AHEAD, 60.0, create))
    await out.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await recall.get("customer:k") == AHEAD
