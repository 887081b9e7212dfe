"""The Khoros Marketing Custom CRM API (docs/behaviour.md §1): one handler per operation, each
given the live Runtime and its request's Args, the body already accepted by the operation's
schema (`gateway.api`). What they call is in `gateway.mapping`: the engine's reads, best
match, and the writes of cases and customers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import NotFound
from gateway.mapping.fields import RECORD_ID
from gateway.operation import Args
from gateway.runtime import Runtime


def _id(args: Args, what: str = "customer") -> str:
    value = args.params["id"]
    if not RECORD_ID.match(value):
        raise NotFound(f"No {what} exists with the given id.")
    return value


def _case(body: Mapping[str, Any] | None, *, create: bool) -> dict[str, Any]:
    """A case body as the engine takes it: its structure is the schema's; a numeric
    `customerId` reads as text, and one that cannot be an id is no customer (404)."""
    out = dict(body or {})
    customer = out.get("customerId")
    if isinstance(customer, int) and not isinstance(customer, bool):
        out["customerId"] = customer = str(customer)
    if (create or customer) and not RECORD_ID.match(str(customer)):
        raise NotFound("No customer exists with the given id.")
    return out


async def meta(live: Runtime, args: Args) -> Any:
    kind = args.params["type"]
    if kind not in ("customer", "case"):
        raise NotFound("Meta type not supported: use customer or case.")
    return await live.engine.meta(kind)


async def search_customers(live: Runtime, args: Args) -> Any:
    return await live.engine.search_customers(args.body or {})


async def bestmatch(live: Runtime, args: Args) -> Any:
    # Unknown keys are ignored: Khoros may send more context than its reference lists.
    return await live.bestmatch.find(args.body or {})


async def find_customer(live: Runtime, args: Args) -> Any:
    return await live.engine.find_customer(_id(args))


async def find_cases(live: Runtime, args: Args) -> Any:
    return await live.engine.find_cases(_id(args))


async def create_customer(live: Runtime, args: Args) -> Any:
    return await live.customers.create(args.body or {})


async def update_customer(live: Runtime, args: Args) -> Any:
    return await live.customers.update(_id(args), args.body or {})


async def create_case(live: Runtime, args: Args) -> Any:
    return await live.cases.create(_case(args.body, create=True))


async def find_case(live: Runtime, args: Args) -> Any:
    # A single case carries the interactions the gateway wrote on it; lists stay light.
    return await live.engine.find_case(_id(args, "case"), interactions=True)


async def update_case(live: Runtime, args: Args) -> Any:
    case_id = _id(args, "case")
    return await live.cases.update(case_id, _case(args.body, create=False))
