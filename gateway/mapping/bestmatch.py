"""Best match (docs/behaviour.md §1.6): the customers an author may be, best first, from every
signal the mapping's strategies read in the body: exact identifiers (an email, a phone number,
an account number; a case number or an order number, through the case's customer), handles
per network (from `profileUrl`, or `screenName` on a known network) and the display name.

Each (strategy, value) is one lookup, chosen and bounded by `fanout.plan`; the lookups run
concurrently inside the request's budget, and any failure fails the whole answer (an empty best
match makes the agent create a duplicate customer), while a value that finds nothing (a case
that does not exist) finds nothing. Every result is re-checked against its record. A customer
scores the sum of the scores of the strategies that found it, each strategy once; ties keep
the order of the strategies."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from gateway.errors import NotFound
from gateway.mapping import profiles
from gateway.mapping.engine import Engine
from gateway.mapping.fanout import FanOutLimits, plan
from gateway.mapping.fields import RECORD_ID
from gateway.mapping.model import ObjectSpec, Strategy

Found = dict[str, Any] | str  # a customer object, or the id of a customer still to read


class BestMatch:
    def __init__(self, engine: Engine, limits: FanOutLimits) -> None:
        """``limits``: how far one best match fans out."""
        self.engine = engine
        self.limits = limits

    async def find(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        e, strategies = self.engine, self.engine.mapping.strategies
        given = {"body": body, "handles": profiles.handles(body)}
        planned, ignored = plan(strategies, given, self.limits)
        customer = await e.object("customer")
        by_case = any(s.find != "customers" for s, _ in planned)
        cases = await e.object("case") if by_case else None
        found = await asyncio.gather(*(self._lookup(s, v, customer, cases) for s, v in planned))
        position = {id(s): n for n, s in enumerate(strategies)}
        objects: dict[str, dict[str, Any]] = {}
        by: dict[str, set[int]] = {}  # customer id -> the strategies that found it, in order
        for (strategy, _), results in zip(planned, found, strict=True):
            for result in results:
                cid = result if isinstance(result, str) else str(result["id"])
                if not isinstance(result, str):
                    objects.setdefault(cid, result)
                by.setdefault(cid, set()).add(position[id(strategy)])
        # The customers cases led to, each read once; no more reads than searches.
        unread = [cid for cid in by if cid not in objects]
        kept = unread[: self.limits.max_searches]
        for cid, obj in zip(kept, await asyncio.gather(*map(self._customer, kept)), strict=True):
            if obj is not None:
                objects[cid] = obj
        if ignored or len(kept) < len(unread):
            e.log.warning(
                "bestmatch_limited",
                searches=len(planned),
                ignored_values=ignored,
                customers_not_read=len(unread) - len(kept),
            )
        scored = [(sum(strategies[n].score for n in by[cid]), cid) for cid in by if cid in objects]
        scored.sort(key=lambda pair: -pair[0])  # stable: ties keep the strategies' order
        e.log.info(
            "bestmatch_scored",
            candidates=[
                {"id": cid, "score": score, "by": [strategies[n].name for n in sorted(by[cid])]}
                for score, cid in scored
            ],
        )
        return [objects[cid] for _, cid in scored]

    async def _lookup(
        self, s: Strategy, value: str, customer: ObjectSpec, cases: ObjectSpec | None
    ) -> list[Found]:
        e = self.engine
        if s.find == "customers":
            field = next(f for f in customer.fields if f.name == s.field)
            return list(await e.search(customer, [(field, value)], s.match))
        assert cases is not None
        if s.find == "case":
            return await self._case(value)
        field = next(f for f in cases.fields if f.name == s.field)
        found = await e.search(cases, [(field, value)], s.match, cases=True)
        return [_customer_id(c) for c in found if _customer_id(c)]

    async def _case(self, value: str) -> list[Found]:
        """The customer of the case with this number (its id): one exact read, re-checked."""
        number = value.strip().removeprefix("#").strip()
        if not RECORD_ID.match(number):
            return []  # no case has such an id; it must not go into a path
        try:
            case = await self.engine.find_case(number)
        except NotFound:
            return []
        if str(case.get("number", "")).casefold() != number.casefold():
            return []
        customer = _customer_id(case)
        return [customer] if customer else []

    async def _customer(self, id: str) -> dict[str, Any] | None:
        try:
            return await self.engine.find_customer(id)
        except NotFound:
            return None  # the case's requester was deleted since


def _customer_id(case: Mapping[str, Any]) -> str:
    """The case's customer id, when it is one that may go into a path."""
    id = str(case.get("customerId") or "")
    return id if RECORD_ID.match(id) else ""
