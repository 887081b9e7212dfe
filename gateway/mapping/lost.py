"""A create whose answer was lost (docs/behaviour.md §1.4, §1.7): a dropped connection, a 5xx,
no answer within the budget and its grace, or a process that died while the call was out. The
CRM may have made the record or not; the gateway remembers that it does not know, and when it
began, so that the create and its repeats look for what it may have made before anyone makes
it again. That is written before the call goes out (`written_ahead`): a process killed
mid-call leaves it behind, where a record written after the failure would never be."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from gateway.errors import (
    BadGateway,
    ClientError,
    CreatePending,
    DeadlineExceeded,
    IdempotencyMismatch,
    UpstreamError,
)
from gateway.recall import Recall

T = TypeVar("T")

# The failures of a write after which what it did may not be known (`unknown`).
UNKNOWN = (DeadlineExceeded, BadGateway)
# How far a CRM's clock may be behind ours when it says when it made a record.
SKEW_SECONDS = 60.0
# A repeat refused while the CRM may yet show what a lost create made is told to come back
# within this, and looks again then.
RETRY_AFTER_SECONDS = 60.0


def unknown(error: Exception) -> bool:
    """Does ``error`` leave the outcome of the write that raised it unknown? Not when the call
    never went out, or the CRM refused it (`UpstreamError.not_applied`): nothing was made."""
    return (
        isinstance(error, UNKNOWN)
        and not isinstance(error, IdempotencyMismatch)
        and not error.not_applied
    )


def not_made(error: BaseException) -> bool:
    """Does ``error`` say for sure that the create that raised it made nothing: the CRM refused
    it (a 4xx), or it never went out? A cancelled call, or one that failed in an unforeseen way,
    may have been applied."""
    if isinstance(error, ClientError):
        return True
    return isinstance(error, UpstreamError) and not unknown(error)


async def written_ahead(
    recall: Recall,
    name: str,
    remembered: Mapping[str, Any],
    ttl_seconds: float,
    create: Callable[[], Awaitable[T]],
) -> T:
    """Run the non-repeatable ``create`` with ``remembered`` (an `entry`: its outcome unknown)
    under ``name`` while it is out, so that a process that dies mid-call (killed, out of
    memory) leaves it behind for the repeat. On success the caller replaces it with what was
    made; a create that made nothing for sure (`not_made`) takes it away; any other failure
    leaves it, for the caller (or the repeat) to look for what the create may have made."""
    await recall.put(name, dict(remembered), ttl_seconds)
    try:
        return await create()
    except BaseException as exc:
        if not_made(exc):
            await recall.forget(name)
        raise


def entry(started: float, settles: float) -> dict[str, Any]:
    """What is remembered of a create whose outcome is unknown: when it began, and until when
    the CRM may not show what it made (both in seconds since the epoch)."""
    return {"unknown": True, "started": started, "until": settles}


def refuse_while_pending(seen: Mapping[str, Any], now: float) -> None:
    """Refuse a repeat (503 CreatePending) while the CRM may yet show what the earlier create
    remembered in ``seen``, whose answer was lost, made: making it again could make it twice.
    Past its time, what was not found is taken as not made."""
    until = number(seen.get("until"))
    if until > now:
        raise CreatePending.until(
            min(until - now, RETRY_AFTER_SECONDS),
            detail="an earlier create of these values lost its answer; the CRM may yet show it",
        )


def made_since(created: Any, started: float) -> bool:
    """Could a record the CRM says it made at ``created`` (ISO-8601) have been made by a create
    that began at ``started``? When the CRM does not say (or says something unreadable), it
    could."""
    if not isinstance(created, str) or not created.strip():
        return True
    try:
        when = datetime.fromisoformat(created.strip().replace("Z", "+00:00"))
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp() >= started - SKEW_SECONDS


def number(value: Any) -> float:
    """A remembered time (JSON from another process, so anything): 0.0 when it is no number."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
