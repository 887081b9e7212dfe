"""Zendesk's rate limits, as the sandbox enforces them (docs/sandbox.md):

- the account limit: requests a minute (700 by default, Enterprise; Team 200, Growth and
  Professional 400, High Volume 2,500); 429 with ``Retry-After`` and
  ``X-Rate-Limit-Remaining: 0``;
- updates of one user (``PUT /users/{id}``): 5 a minute per user;
- updates of one ticket (``PUT /tickets/{id}``): 30 in 10 minutes per ticket.

A narrower limit answers 429 with ``Retry-After`` while the account headers still show quota
left: that is how a client tells "this record" from "the whole account". Every answer carries
``X-Rate-Limit`` and ``X-Rate-Limit-Remaining``. Windows slide; a limit of 0 is no limit.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from gateway.sandbox.rules import ZendeskError


@dataclass
class Window:
    """At most ``limit`` events in any ``seconds``-long window."""

    limit: int
    seconds: float
    events: deque[float] = field(default_factory=deque)

    def _trim(self, now: float) -> None:
        while self.events and self.events[0] <= now - self.seconds:
            self.events.popleft()

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0: it fits now)."""
        if self.limit <= 0:
            return 0.0
        self._trim(now)
        if len(self.events) < self.limit:
            return 0.0
        return self.events[len(self.events) - self.limit] + self.seconds - now

    def add(self, now: float) -> None:
        if self.limit > 0:
            self.events.append(now)

    def remaining(self, now: float) -> int:
        self._trim(now)
        return max(self.limit - len(self.events), 0)


@dataclass
class Limits:
    account_per_minute: int = 700
    user_updates_per_minute: int = 5
    ticket_updates_per_10_minutes: int = 30
    _account: Window | None = None
    _records: dict[tuple[str, int], Window] = field(default_factory=dict)

    def _account_window(self) -> Window:
        if self._account is None or self._account.limit != self.account_per_minute:
            self._account = Window(self.account_per_minute, 60.0)
        return self._account

    def _record_window(self, kind: str, id: int) -> Window:
        limit, seconds = (
            (self.user_updates_per_minute, 60.0)
            if kind == "user"
            else (self.ticket_updates_per_10_minutes, 600.0)
        )
        window = self._records.get((kind, id))
        if window is None or window.limit != limit:
            window = self._records[(kind, id)] = Window(limit, seconds)
        return window

    def headers(self, now: float) -> dict[str, str]:
        account = self._account_window()
        if account.limit <= 0:
            return {}
        remaining = account.remaining(now)
        return {"X-Rate-Limit": str(account.limit), "X-Rate-Limit-Remaining": str(remaining)}

    def take(self, record: tuple[str, int] | None, now: float) -> dict[str, str]:
        """Count one request (``record``: the user or ticket an update addresses); raise the
        429 Zendesk would answer, or give the headers of the answer."""
        account = self._account_window()
        wait = account.wait(now)
        if wait > 0:
            raise _too_many(wait, {**self.headers(now), "X-Rate-Limit-Remaining": "0"}, _ACCOUNT)
        if record is not None:
            window = self._record_window(*record)
            wait = window.wait(now)
            if wait > 0:
                # Not counted for the account: the account's headers must show quota left, which
                # is how a client tells this record's limit from the account's.
                raise _too_many(wait, self.headers(now), _RECORD[record[0]])
            window.add(now)
        account.add(now)
        return self.headers(now)


_ACCOUNT = "You have exceeded the rate limit for this account. Please wait and try again."
_RECORD = {
    "user": "You have exceeded the rate limit for updating a single unique user. "
    "Please wait and try again.",
    "ticket": "You have exceeded the rate limit for updating this ticket. "
    "Please wait and try again.",
}


def _too_many(wait: float, headers: dict[str, str], text: str) -> ZendeskError:
    # Zendesk answers these in plain text, not its JSON error envelope.
    return ZendeskError(429, {}, {**headers, "Retry-After": str(max(1, math.ceil(wait)))}, text)
