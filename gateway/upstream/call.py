"""One upstream request as it passes through the layers: each layer hands on a copy with what
it adds (auth headers, the attempt number), as an HTTP client's middleware does."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.exchange import Response


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str  # rendered, relative to the upstream's base URL
    route: str  # the path template: what logs show, never ids or customer data
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    retry_safe: bool = False  # repeating it cannot apply it twice
    scope: str = ""  # what a narrow rate limit on this call holds (see limits.py)
    attempt: int = 1
    retry_reason: str | None = None  # why this attempt is a retry

    def with_headers(self, headers: Mapping[str, str]) -> Call:
        """The call with these headers: what `dataclasses.replace` makes, at a third of its
        cost (every attempt passes two layers that add headers)."""
        return Call(
            self.method, self.path, self.route, self.query, headers, self.body,
            self.retry_safe, self.scope, self.attempt, self.retry_reason,
        )  # fmt: skip


Send = Callable[[Call], Awaitable[Response]]


class Transport(Protocol):
    """One attempt: the call goes out, an answer or a gateway error comes back. The real one is
    `transport.HttpTransport`; `explain` passes a dry one, tests pass fakes."""

    async def send(self, call: Call) -> Response: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...
