"""What an operation of the gateway's API is: its declaration (`Operation`, as a route that
carries its own details), what its handler is given (`Args`), and the realms operations belong
to. The table itself is `gateway.api.OPERATIONS`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.body import Body, Schema
from gateway.config import Budget, Config
from gateway.runtime import Runtime

# Who calls an operation, and so how it is authenticated (gateway.access) and where it is served.
Realm = Literal["khoros", "hybrid_chat", "admin", "ops"]
# What the mapping holds for an operation (`operations.<name>`): steps whose result is one
# record or a list of records, or best-match strategies.
Mapped = Literal["record", "records", "strategies"]

# Statuses any operation of a realm may answer besides its own (docs/behaviour.md §1.1, §2).
REALM_STATUSES: dict[Realm, tuple[int, ...]] = {
    "khoros": (401, 413, 415, 429, 500, 502, 503, 504),
    "hybrid_chat": (401, 429, 500, 502, 503, 504),
    "admin": (401, 404, 413, 429, 500),
    "ops": (),
}


def prefixes(config: Config) -> dict[Realm, str]:
    """Where each realm is served: Khoros under `server.base_path`, Hybrid Chat under
    `expertflow.path_prefix`, the rest at the root."""
    return {
        "khoros": config.server.base_path,
        "hybrid_chat": config.expertflow.path_prefix,
        "admin": "",
        "ops": "",
    }


@dataclass(frozen=True)
class Args:
    """What a handler is given of its request: the path's parameters, the query, and the body
    as its schema accepted it (None for an operation that takes none)."""

    params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


# A handler answers with the JSON of its operation's success status (None: an empty answer),
# or with a response of its own (a status or a content type the operation decides).
Handler = Callable[[Runtime, Args], Awaitable[Any]]


@dataclass(frozen=True)
class Operation:
    name: str  # the operationId; what logs, metrics and the mapping call it
    method: str
    path: str  # under its realm's prefix; {name} is a path parameter
    handler: Handler
    realm: Realm
    response: Schema | None  # the JSON of the success answer; None: not JSON
    status: int = 200  # of success
    errors: tuple[int, ...] = ()  # its own, besides its realm's: each with the error body
    body: Body | None = None  # the JSON it takes, checked before the handler runs
    # The query parameters it reads; one whose schema has a default may be left out.
    query: Mapping[str, Schema] = field(default_factory=dict)
    empty: int | None = None  # the status of an empty answer (204: no body)
    answers: Mapping[int, Schema] = field(default_factory=dict)  # others, not the error body
    budget: Budget | None = "default"  # which of Khoros's deadlines; None: no budget
    mapped: Mapped | None = None  # what the mapping holds for it under `operations`
    summary: str = ""

    def statuses(self) -> tuple[int, ...]:
        """Every status it may answer with the error body."""
        return tuple(sorted({*self.errors, *REALM_STATUSES[self.realm]}))

    @property
    def params(self) -> list[str]:
        return [part.strip("{}") for part in self.path.split("/") if part.startswith("{")]
