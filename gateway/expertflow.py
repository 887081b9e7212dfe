"""Expertflow Hybrid Chat's priority-routing API (docs/behaviour.md §2): `GET
/customer?query=phone:{refId}` and `GET /label`, one handler each, given the live Runtime and
its request's Args. The service they call is `gateway.mapping.priority_routing`."""

from __future__ import annotations

from typing import Any

from gateway.errors import BadRequest, NotFound
from gateway.mapping.codecs import digits
from gateway.mapping.priority_routing import PriorityRouting
from gateway.operation import Args
from gateway.runtime import Runtime


def parse_query(query: str | None) -> str:
    """`phone:<number>`; a `+` that arrived as a space (form encoding) is still a `+`."""
    kind, sep, value = (query or "").partition(":")
    if kind.strip().lower() != "phone" or not sep:
        raise BadRequest("The query must be phone:<number>.")
    value = value.strip()
    if query and query.partition(":")[2].startswith(" "):
        value = "+" + value
    if len(digits(value)) < 3:
        raise BadRequest("The query must be phone:<number>.")
    return value


def _priority_routing(live: Runtime) -> PriorityRouting:
    if live.priority_routing is None:
        raise NotFound("No such endpoint: the mapping has no `expertflow` section.")
    return live.priority_routing


async def customer_by_phone(live: Runtime, args: Args) -> Any:
    service = _priority_routing(live)
    return await service.customer(parse_query(args.query.get("query")))


async def labels(live: Runtime, args: Args) -> Any:
    return await _priority_routing(live).labels()
