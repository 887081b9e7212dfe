"""`crm-gateway explain`: the upstream requests an operation makes, secrets masked, and (with
--live) what the answers map to. A dry run sends nothing: every request gets an empty answer."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TextIO

from multidict import CIMultiDict, CIMultiDictProxy

from gateway import deadline, logs, runtime
from gateway.config import Config, secrets_of
from gateway.errors import GatewayError, MappingFailed, NotFound, UpstreamError
from gateway.exchange import Response
from gateway.expertflow import parse_query
from gateway.khoros import case_body
from gateway.mapping.expr import Path
from gateway.mapping.model import MappingSpec
from gateway.mapping.spec import load_mapping
from gateway.upstream import trace
from gateway.upstream.call import Call

OPERATIONS = (
    "meta",
    "search_customers",
    "bestmatch",
    "find_customer",
    "find_cases",
    "create_customer",
    "update_customer",
    "create_case",
    "find_case",
    "update_case",
    "customer_by_phone",
    "labels",
)
NEEDS_ID = ("find_customer", "find_cases", "update_customer", "find_case", "update_case")
NEEDS_BODY = (
    "search_customers",
    "bestmatch",
    "create_customer",
    "update_customer",
    "create_case",
    "update_case",
)


class DryTransport:
    """Sends nothing: records each request as the real transport would send it (headers and
    body included, for the printout), and answers `{}`."""

    async def send(self, call: Call) -> Response:
        trace.record(call)
        return Response(200, CIMultiDictProxy(CIMultiDict()), {}, "{}")

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _call(
    built: runtime.Runtime, operation: str, *, id: str, body: Any, kind: str
) -> Callable[[], Awaitable[Any]]:
    engine, routing = built.engine, built.priority_routing
    cases, customers = built.cases, built.customers
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "meta": lambda: engine.meta(kind),
        "search_customers": lambda: engine.search_customers(body),
        "bestmatch": lambda: engine.bestmatch(body),
        "find_customer": lambda: engine.find_customer(id),
        "find_cases": lambda: engine.find_cases(id),
        "create_customer": lambda: customers.create(body),
        "update_customer": lambda: customers.update(id, body),
        "create_case": lambda: cases.create(body),
        "find_case": lambda: engine.find_case(id),
        "update_case": lambda: cases.update(id, body),
    }
    if routing is not None:
        calls["customer_by_phone"] = lambda: routing.customer(parse_query(f"phone:{id}"))
        calls["labels"] = routing.labels
    if operation not in calls:
        raise ValueError(f"{operation}: the mapping has no `expertflow` section")
    return calls[operation]


async def explain(
    config: Config, operation: str, *, id: str, body: Any, kind: str, live: bool, out: TextIO
) -> int:
    if operation in ("create_case", "update_case"):
        body = case_body(body, create=operation == "create_case")  # as the route checks it
    if live:
        built = runtime.build(config, load_mapping(config.upstream.mapping))
    else:
        # No token refresh either: the dry run shows the configured credentials' headers.
        dry = replace(config, upstream=replace(config.upstream, oauth=None))
        mapping = _reading_no_definitions(load_mapping(config.upstream.mapping))
        built = runtime.build(dry, mapping, transport=DryTransport())
    secrets = secrets_of(config)
    stats = logs.start_request()
    stats.keep_bodies = True
    await built.upstream.start()
    code = 0
    empty_answers = False
    try:
        budget = config.deadlines.budget("meta" if operation == "meta" else "default")
        with deadline.budget(budget, config.deadlines.margin_seconds):
            result: Any = await _call(built, operation, id=id, body=body, kind=kind)()
    except GatewayError as exc:
        result = {"status": exc.status, **exc.body("explain")}
        code = 1
        empty_answers = not live and isinstance(exc, UpstreamError | MappingFailed | NotFound)
    finally:
        await built.upstream.close()
    mode = "live" if live else "dry run: nothing is sent, every answer is {}"
    url = config.upstream.base_url
    print(f"{operation} against {url} ({mode})\n", file=out)
    for n, call in enumerate(stats.calls, 1):
        print(f"{n}. {call['method']} {url}{call['url']}", file=out)
        print(f"   template: {call['path']}", file=out)
        for name, value in (call.get("headers") or {}).items():
            shown = "[secret]" if name.lower() == "authorization" else _mask(str(value), secrets)
            print(f"   {name}: {shown}", file=out)
        if call.get("body") is not None:
            text = json.dumps(call["body"], indent=2, ensure_ascii=False)
            print("   body: " + _mask(text, secrets).replace("\n", "\n   "), file=out)
        if "status" in call:
            print(f"   -> {call['status']} in {call['duration_ms']} ms", file=out)
    if not stats.calls:
        print("(no upstream request: answered from the mapping alone)", file=out)
    if empty_answers:
        print("\n(dry run: the empty answers map to no record; use --live to see one)", file=out)
        return 0
    label = "what the caller gets" if live else "mapped from the empty answers"
    print(f"\n{label}:\n" + json.dumps(result, indent=2, ensure_ascii=False), file=out)
    return code


def _reading_no_definitions(mapping: MappingSpec) -> MappingSpec:
    """The mapping, reading the empty answers to its custom field and label requests as none.
    (The engine refuses an answer without the list `items` points to as the CRM's error, so a
    dry run would otherwise stop at the first of them.)"""
    none = Path("`[]`")
    objects = {
        kind: replace(o, custom_fields=replace(o.custom_fields, items=none))
        if o.custom_fields is not None
        else o
        for kind, o in mapping.objects.items()
    }
    routing = mapping.priority_routing
    if routing is not None and routing.labels.request is not None:
        routing = replace(routing, labels=replace(routing.labels, items=none))
    return replace(mapping, objects=objects, priority_routing=routing)


def _mask(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if len(secret) >= 4:  # as in the logs: a shorter one would mask ordinary text
            text = text.replace(secret, "[secret]")
    return text
