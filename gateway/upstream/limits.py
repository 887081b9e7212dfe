"""Rate limits (docs/behaviour.md §4): how long an answer asks us to wait, and what the wait
holds. A limit holds the whole account, unless the mapping's rule says that the answer limits
something narrower (one record's writes, one endpoint); then it holds only the calls of the
same scope, and every other call goes on."""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.exchange import Response
from gateway.upstream.call import Call

ACCOUNT = "account"  # the hold key of an account-wide limit; a scope's is "scope:<scope>"

# Quota headers that show none left ("remaining", then the "reset" in seconds): the widespread
# `X-Rate-Limit-Remaining` and the IETF draft's. The wait is not known without a reset: one second.
_QUOTA = (("ratelimit-remaining", "ratelimit-reset"), ("x-rate-limit-remaining", "ratelimit-reset"))
UNKNOWN_RESET = 1.0


def _never(resp: Response) -> bool:
    return False


def _method_and_path(method: str, path: str, route: str) -> str:
    return f"{method} {path}"


@dataclass(frozen=True)
class RateLimits:
    """The mapping's rule, as plain functions (the upstream package knows no mapping):
    ``narrow`` tells a limit answer that leaves the account's quota alone; ``scope`` is what
    such an answer holds, from the request's method, rendered path and path template."""

    narrow: Callable[[Response], bool] = _never
    scope: Callable[[str, str, str], str] = _method_and_path

    def key(self, call: Call, resp: Response) -> str:
        """What this answer's limit holds."""
        return f"scope:{call.scope}" if self.narrow(resp) else ACCOUNT


def keys(call: Call) -> tuple[str, str]:
    """The holds a call waits for: the account's, and its scope's."""
    return ACCOUNT, f"scope:{call.scope}"


def parse_retry_after(
    value: str | None, *, ceiling: float, now: float | None = None
) -> float | None:
    """Seconds to wait, from delta-seconds or an HTTP date; clamped to [0, ceiling]. None when
    missing or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (now if now is not None else datetime.now(UTC).timestamp())
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), ceiling)


def asked_wait(resp: Response, *, ceiling: float, default: float, now: float) -> float | None:
    """How long the answer asks every call it limits to wait: a 429's `Retry-After` (``default``
    when it is missing or unreadable), or the reset of a quota that shows none left. None: the
    answer limits nothing."""
    if resp.status == 429:
        asked = parse_retry_after(resp.headers.get("Retry-After"), ceiling=ceiling, now=now)
        return default if asked is None else asked
    for remaining, reset in _QUOTA:
        left = resp.headers.get(remaining)
        if left is not None and left.strip() == "0":
            wait = parse_retry_after(resp.headers.get(reset), ceiling=ceiling, now=now)
            return UNKNOWN_RESET if wait is None else wait
    return None
