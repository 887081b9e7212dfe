"""Expertflow Hybrid Chat's priority-routing API (docs/behaviour.md §2), over HTTP:
`GET /customer?query=phone:{refId}` and `GET /label`. The service they call is
`gateway.mapping.priority_routing`."""

from __future__ import annotations

from aiohttp import web

from gateway import jsonio, reloading
from gateway.errors import BadRequest, NotFound
from gateway.mapping.codecs import digits
from gateway.mapping.priority_routing import PriorityRouting


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


def _priority_routing(request: web.Request) -> PriorityRouting:
    found = reloading.of(request).priority_routing
    if found is None:
        raise NotFound("No such endpoint: the mapping has no `expertflow` section.")
    return found


async def customer(request: web.Request) -> web.Response:
    routing = _priority_routing(request)
    phone = parse_query(request.query.get("query"))
    return jsonio.response(await routing.customer(phone))


async def labels(request: web.Request) -> web.Response:
    return jsonio.response(await _priority_routing(request).labels())
