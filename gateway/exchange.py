"""What passes between the mapping engine and the upstream client, so that neither imports the
other: the answer (`Response`) and the one call the engine makes (`Caller`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # case-insensitive (a CIMultiDictProxy from the transport)
    data: Any  # parsed JSON, or None when the body is empty or not JSON
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Caller(Protocol):
    async def request(
        self,
        method: str,
        path: str,
        *,
        route: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        retry_safe: bool = False,
    ) -> Response:
        """One upstream request, retried inside the request's budget where that is safe.
        ``route`` is the unrendered path template (for logs); ``retry_safe``: repeating the
        call cannot apply it twice (a read, or a keyed or guarded write)."""
        ...
