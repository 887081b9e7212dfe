"""Expertflow Hybrid Chat priority routing (docs/behaviour.md §2):
`GET /customer?query=phone:{refId}` and `GET /label`, through the mapping's `expertflow` section."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import jsonio, logs
from gateway.config import Config
from gateway.errors import BadRequest, NotFound
from gateway.mapping import routing
from gateway.mapping.codecs import PhoneNumbers, digits
from gateway.mapping.engine import Engine
from gateway.mapping.routing import RoutingSpec


class Routing:
    def __init__(self, engine: Engine, *, not_found: str) -> None:
        spec = engine.mapping.routing
        if spec is None:
            raise ValueError("the mapping has no `expertflow` section")
        self.spec: RoutingSpec = spec
        self.engine = engine
        self.not_found = not_found
        self.log = logs.get()

    async def _entries(self) -> list[tuple[str, str]]:
        source = self.spec.labels
        ctx = dict(self.engine.base_ctx)
        if source.lookup is not None:
            ctx["lookup"] = await self.engine.fetch(source.lookup, ctx)
        data = await self.engine.fetch(source.request, ctx) if source.request else None
        return routing.label_entries(source, data)

    async def entries(self) -> list[tuple[str, str]]:
        cache = self.engine.caches["labels"]
        found: list[tuple[str, str]] = await cache.get("labels", self._entries)
        return found

    async def labels(self) -> list[dict[str, Any]]:
        return routing.label_objects(
            self.spec.labels, self.engine.mapping.name, await self.entries()
        )

    @property
    def phones(self) -> PhoneNumbers:
        return self.engine.codecs.phones

    async def customer(self, phone: str) -> dict[str, Any]:
        number = self.phones.e164(phone)
        if number is None:  # no number (or a national one without a default region)
            return self._not_found(phone)
        cache = self.engine.caches["customer_by_phone"]
        found: dict[str, Any] = await cache.get(number, lambda: self._customer(number))
        return found

    def _not_found(self, phone: str) -> dict[str, Any]:
        if self.not_found == "empty":
            return routing.not_found_object(phone)
        raise NotFound("No customer has this phone number.")

    async def _customer(self, phone: str) -> dict[str, Any]:
        obj = await self.engine.object("customer")
        field = next(f for f in obj.fields if f.name == self.spec.phone_field)
        records = await self.engine.find_records(obj, [(field, phone)], "phone")
        if not records:
            return self._not_found(phone)
        # Most recently updated first; ties by id, so every replica picks the same one.
        records.sort(
            key=lambda r: (str(self.spec.updated(r) or ""), str(r.get("id"))), reverse=True
        )
        chosen = records[0]
        if len(records) > 1:
            self.log.warning("phone_ambiguous", matches=len(records), chosen=str(chosen.get("id")))
        known = {key for key, _ in await self.entries()}
        keys = routing.customer_labels(self.spec.labels, chosen, known)
        ids = [routing.label_id(self.engine.mapping.name, k) for k in keys]
        matched = next(
            (str(v) for v in (field.read(chosen),) if v and self.phones.same(v, phone)), phone
        )
        return routing.customer_object(self.spec, chosen, matched, ids, self.phones)


def warn_about_access(config: Config) -> None:
    """Say at start-up (and on reload) how the endpoints are reachable, when it is not by key."""
    if config.expertflow.allow_anonymous:
        logs.get().warning(
            "expertflow_anonymous",
            detail="/customer and /label answer without a key (expertflow.allow_anonymous)",
        )
    elif not config.expertflow.api_keys:
        logs.get().warning(
            "expertflow_locked",
            detail="/customer and /label answer 401: set EXPERTFLOW_API_KEYS "
            "(or expertflow.allow_anonymous: true)",
        )


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


def _routing(request: web.Request) -> Routing:
    from gateway import runtime  # runtime builds Routing: import here, not at the top

    routing = runtime.of(request).routing
    if routing is None:
        raise NotFound("No such endpoint: the mapping has no `expertflow` section.")
    return routing


async def customer(request: web.Request) -> web.Response:
    routing = _routing(request)
    phone = parse_query(request.query.get("query"))
    return jsonio.response(await routing.customer(phone))


async def labels(request: web.Request) -> web.Response:
    return jsonio.response(await _routing(request).labels())
