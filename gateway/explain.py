"""`crm-gateway explain`: the upstream requests an operation makes, secrets masked, and (with
--live) what the answers map to. A dry run sends nothing: every request gets an empty answer."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, TextIO

from multidict import CIMultiDict, CIMultiDictProxy

from gateway import deadline, logs, runtime
from gateway.api import OPERATIONS
from gateway.body import accepted
from gateway.config import Config, secrets_of
from gateway.errors import BadRequest, GatewayError, MappingFailed, NotFound, UpstreamError
from gateway.exchange import Response
from gateway.mapping.expr import Path
from gateway.mapping.model import MappingSpec
from gateway.mapping.spec import load_mapping
from gateway.operation import Args, Operation
from gateway.redaction import Redactor
from gateway.upstream import trace
from gateway.upstream.call import Call

# What explain runs: the operations of Khoros and Hybrid Chat, by name.
EXPLAINED = {op.name: op for op in OPERATIONS if op.realm in ("khoros", "hybrid_chat")}


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


def _args(op: Operation, *, id: str, body: Any, kind: str) -> Args:
    """The request an operation gets from the command line: ``id`` for the record's id (or the
    phone number), ``kind`` for meta's type, the body as its schema accepts it."""
    if op.body is not None and not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    given = accepted(op.body, body) if op.body is not None else None
    return Args(params={"id": id, "type": kind}, query={"query": f"phone:{id}"}, body=given)


async def explain(
    config: Config, operation: str, *, id: str, body: Any, kind: str, live: bool, out: TextIO
) -> int:
    op = EXPLAINED[operation]
    if live:
        built = runtime.build(config, load_mapping(config.upstream.mapping))
    else:
        # No token refresh either: the dry run shows the configured credentials' headers.
        dry = replace(config, upstream=replace(config.upstream, oauth=None))
        mapping = _reading_no_definitions(load_mapping(config.upstream.mapping))
        built = runtime.build(dry, mapping, transport=DryTransport())
    secrets = Redactor()  # secrets only: the integrator sees their own data
    secrets.configure(secrets_of(config), pii=True)
    stats = logs.start_request()
    stats.keep_bodies = True
    await built.upstream.start()
    code = 0
    empty_answers = False
    margin = config.deadlines.margin_seconds
    try:
        with deadline.budget(config.deadlines.budget(op.budget or "default"), margin):
            result: Any = await op.handler(built, _args(op, id=id, body=body, kind=kind))
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
            shown = "[secret]" if name.lower() == "authorization" else secrets.text(str(value))
            print(f"   {name}: {shown}", file=out)
        if call.get("body") is not None:
            text = json.dumps(call["body"], indent=2, ensure_ascii=False)
            print("   body: " + secrets.text(text).replace("\n", "\n   "), file=out)
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
    hybrid_chat = mapping.priority_routing
    if hybrid_chat is not None and hybrid_chat.labels.request is not None:
        hybrid_chat = replace(hybrid_chat, labels=replace(hybrid_chat.labels, items=none))
    return replace(mapping, objects=objects, priority_routing=hybrid_chat)
