"""Runs the mapping's operations against the upstream: render each step's request, call, read
the answer, map records back. Knows the caller's API shapes, never a CRM."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gateway import logs
from gateway.cache import Caches, seen
from gateway.errors import (
    BadGateway,
    FieldError,
    GatewayError,
    IdempotencyMismatch,
    UpdateConflict,
    ValidationFailed,
)
from gateway.mapping import fields as fm
from gateway.mapping.codecs import MATCHES
from gateway.mapping.fanout import FanOutLimits, plan
from gateway.mapping.interactions import comment as render_comment
from gateway.mapping.interactions import drop_existing, idempotency_key
from gateway.mapping.model import FieldSpec, MappingSpec, ObjectSpec, Operation, Request, Step
from gateway.mapping.spec import discovered_fields, with_fields
from gateway.mapping.translate import failed_answer, translate
from gateway.text import may_need_repair, repaired
from gateway.upstream import Response, Upstream

RESTARTS = 3  # times an operation is run again after a guarded write met a conflict


class _Restart(Exception):
    pass


CORE_META = {
    "customer": [("id", "ID"), ("uri", "Link")],
    "case": [("id", "ID"), ("linkUrl", "Link")],
}


class Engine:
    def __init__(
        self,
        mapping: MappingSpec,
        upstream: Upstream,
        caches: Caches,
        *,
        settings: Mapping[str, Any],
        upstream_url: str,
        limits: FanOutLimits | None = None,
    ) -> None:
        self.mapping = mapping
        self.limits = limits or FanOutLimits()
        self.upstream = upstream
        self.caches = caches
        self.base_ctx = {"settings": dict(settings), "upstream_url": upstream_url}
        self._creating: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self.log = logs.get()

    # -- objects and meta ------------------------------------------------------------------

    async def object(self, kind: str) -> ObjectSpec:
        """The object's fields: the mapping's own plus the upstream's custom fields (cached)."""
        obj = self.mapping.objects[kind]
        if obj.custom_fields is None:
            return obj
        extra = await self.caches["field_definitions"].get(kind, lambda: self._discover(obj))
        return with_fields(obj, extra)

    async def _discover(self, obj: ObjectSpec) -> tuple[FieldSpec, ...]:
        spec = obj.custom_fields
        assert spec is not None
        # kind=None: an error answer here is not read by fields, which wait for this very load.
        data = await self.fetch(spec.request, self.base_ctx, kind=None)
        where = f"{spec.request.method} {spec.request.path.source}"
        return discovered_fields(spec, data, {f.name for f in obj.fields}, where)

    async def meta(self, kind: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.caches["meta"].get(kind, lambda: self._meta(kind))
        return result

    async def _meta(self, kind: str) -> dict[str, Any]:
        obj = await self.object(kind)
        out = [
            {"name": n, "label": label, "type": "text", "searchable": False}
            for n, label in CORE_META[kind]
        ]
        for f in obj.fields:
            if not f.meta:
                continue
            entry: dict[str, Any] = {
                "name": f.name,
                "label": f.label,
                "type": f.type,
                "searchable": f.searchable and kind == "customer",
            }
            if f.type == "single_sel_list":
                entry["listValues"] = [{"name": n, "value": v} for n, v in f.options]
            out.append(entry)
        return {"name": kind, "fields": out}

    # -- customers -------------------------------------------------------------------------

    async def find_customer(self, id: str) -> dict[str, Any]:
        return await self._one("find_customer", "customer", {"id": id})

    async def search_customers(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        obj = await self.object("customer")
        return await self._search(obj, fm.search_pairs(obj.fields, body))

    async def bestmatch(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        obj = await self.object("customer")
        by_name = {f.name: f for f in obj.fields}
        planned, ignored = plan(self.mapping.strategies, body, self.limits)
        if ignored:
            self.log.warning("bestmatch_limited", searches=len(planned), ignored_values=ignored)
        searches = [self._search(obj, [(by_name[s.field], v)], s.match) for s, v in planned]
        # Concurrently, inside the one budget; any failure fails the whole answer, because an
        # empty best match makes the agent create a duplicate customer.
        results = await asyncio.gather(*searches)
        seen: set[str] = set()
        best = []
        for found in results:
            for c in found:
                if c["id"] not in seen:
                    seen.add(c["id"])
                    best.append(c)
        return best

    async def _search(
        self, obj: ObjectSpec, pairs: list[tuple[FieldSpec, str]], match: str | None = None
    ) -> list[dict[str, Any]]:
        out, seen = [], set()
        for record in await self.find_records(obj, pairs, match):
            c = fm.to_object(obj, record, self.base_ctx)
            if c["id"] not in seen:
                seen.add(c["id"])
                out.append(c)
        return out

    async def find_records(
        self, obj: ObjectSpec, pairs: list[tuple[FieldSpec, str]], match: str | None = None
    ) -> list[dict[str, Any]]:
        """Upstream customer records (joined) holding every searched value, re-checked."""
        terms = fm.search_terms(pairs, self.base_ctx)
        records, data, _ = await self._records("search_customers", {"terms": terms})
        joined = (fm.join(obj, r, data) for r in records)
        return [r for r in joined if fm.matches(r, pairs, match)]

    async def create_customer(self, body: Mapping[str, Any]) -> dict[str, Any]:
        obj = await self.object("customer")
        made = await self._one("create_customer", "customer", {"changes": _changes(obj, body)})
        return self._verified(obj, body, made)

    async def update_customer(self, id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        obj = await self.object("customer")
        changes = _changes(obj, body)
        made = await self._one("update_customer", "customer", {"id": id, "changes": changes})
        return self._verified(obj, body, made)

    # -- cases -----------------------------------------------------------------------------

    async def find_cases(self, customer_id: str) -> list[dict[str, Any]]:
        obj = await self.object("case")
        records, data, ctx = await self._records("find_cases", {"id": customer_id}, kind="case")
        return [fm.to_object(obj, fm.join(obj, r, data), ctx) for r in records]

    async def find_case(self, id: str) -> dict[str, Any]:
        return await self._one("find_case", "case", {"id": id})

    async def create_case(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Identical creates in flight at once share one upstream create; the idempotency key
        covers repeats after it (and other replicas)."""
        key = idempotency_key(body)
        task = self._creating.get(key)
        if task is None:
            task = asyncio.ensure_future(self._create_case(body, key))
            self._creating[key] = task
            task.add_done_callback(lambda t: self._creating.pop(key, None))
            task.add_done_callback(seen)
        return await asyncio.shield(task)

    async def _create_case(self, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        obj = await self.object("case")
        comment = render_comment(self.mapping.interactions, body.get("interactions") or [])
        ctx = {"body": body, "changes": _changes(obj, _custom(body)), "idempotency_key": key}
        try:
            made = await self._one("create_case", "case", {**ctx, **comment})
            return self._verified(obj, _custom(body), made)
        except IdempotencyMismatch:
            existing = await self._existing_case(body, list(comment["interactions"]))
            if existing is None:
                raise ValidationFailed(
                    "This case was just created with other details; open it and edit it instead."
                ) from None
            self.log.warning("idempotency_mismatch", case=existing["id"])
            return existing

    async def _existing_case(
        self, body: Mapping[str, Any], markers: list[str]
    ) -> dict[str, Any] | None:
        """The customer's case with this title that holds every interaction's marker."""
        for case in await self.find_cases(str(body["customerId"])):
            text = str(case.get("description", ""))
            if case.get("title") == body.get("title") and all(m in text for m in markers):
                return case
        return None

    async def update_case(self, id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        obj = await self.object("case")
        interactions = body.get("interactions") or []
        ctx = {
            "id": id,
            "body": body,
            "changes": _changes(obj, _custom(body)),
            **render_comment(self.mapping.interactions, interactions),
        }
        return self._verified(obj, _custom(body), await self._one("update_case", "case", ctx))

    def _verified(
        self, obj: ObjectSpec, body: Mapping[str, Any], result: dict[str, Any]
    ) -> dict[str, Any]:
        """For CRMs that drop values they do not know (mapping `verify_writes`): every written
        value must be in the record the CRM returns, or the caller hears which were lost."""
        if not self.mapping.verify_writes:
            return result
        lost = []
        for f in obj.fields:
            wanted = body.get(f.name)
            if f.write is None or wanted in (None, ""):
                continue
            have = result.get(f.name)
            if have is None or not MATCHES[f.match](str(have), str(wanted)):
                lost.append(FieldError(f.name, f"{f.label} was not saved by the CRM."))
        if lost:
            self.log.warning("write_not_kept", fields=[e.name for e in lost])
            raise ValidationFailed("The CRM did not save some values.", fields=lost)
        return result

    # -- running operations ----------------------------------------------------------------

    async def _one(self, name: str, kind: str, given: Mapping[str, Any]) -> dict[str, Any]:
        obj = await self.object(kind)
        op = self.mapping.operations[name]
        ctx = await self._run(op, {**self.base_ctx, **given}, kind)
        record = op.result({"steps": ctx["steps"]})
        if not isinstance(record, Mapping):
            raise BadGateway(detail=f"{name}: the result expression found no record")
        data = {"steps": ctx["steps"]}
        return fm.to_object(obj, fm.join(obj, record, data), ctx)

    async def _records(
        self, name: str, given: Mapping[str, Any], kind: str = "customer"
    ) -> tuple[list[Mapping[str, Any]], dict[str, Any], dict[str, Any]]:
        op = self.mapping.operations[name]
        ctx = await self._run(op, {**self.base_ctx, **given}, kind)
        data = {"steps": ctx["steps"]}
        found = op.result(data)
        if found is not None and not isinstance(found, list):
            raise BadGateway(detail=f"{name}: the result expression found no list")
        return [r for r in found or [] if isinstance(r, Mapping)], data, ctx

    async def _run(self, op: Operation, ctx: dict[str, Any], kind: str) -> dict[str, Any]:
        first = dict(ctx)
        for attempt in range(1, RESTARTS + 1):
            steps: dict[str, Any] = {}
            ctx = {**first, "steps": steps}
            try:
                for step in op.steps:
                    if step.when is not None and not step.when(ctx):
                        continue
                    try:
                        steps[step.name] = await self._step(step, ctx, kind)
                    except UpdateConflict:
                        if not step.restart_on_conflict or attempt == RESTARTS:
                            raise
                        raise _Restart() from None
                    if step.existing_interactions is not None:
                        texts = step.existing_interactions(steps[step.name])
                        drop_existing(self.mapping.interactions, ctx, texts)
                return ctx
            except _Restart:
                # The record changed between our read and our guarded write: read it again.
                self.log.info("operation_restart", operation=op.name, attempt=attempt)
        raise AssertionError("unreachable")

    async def _step(self, step: Step, ctx: dict[str, Any], kind: str) -> Any:
        if step.for_each is None:
            answer = await self.fetch(step.request, ctx, not_found=step.not_found, kind=kind)
            if step.answer_messages is not None and step.answer_failed is not None:
                obj = await self.object(kind)
                where = f"{step.request.method} {step.request.path.source}"
                failure = failed_answer(
                    step.answer_messages(answer), step.answer_failed, obj.fields, where
                )
                if failure is not None:
                    raise failure
            return answer
        items = step.for_each(ctx) or []
        return [
            await self.fetch(
                step.request, {**ctx, "item": item}, not_found=step.not_found, kind=kind
            )
            for item in items
        ]

    async def fetch(
        self,
        req: Request,
        ctx: Mapping[str, Any],
        *,
        not_found: str | None = None,
        kind: str | None = "customer",
    ) -> Any:
        """One upstream request: its parsed JSON answer, or the gateway error it means."""
        query = {k: str(v) for k, v in req.query(ctx).items() if v is not None}
        headers = {k: str(v) for k, v in req.headers(ctx).items() if v}
        body = req.body(ctx) if req.body is not None else None
        resp = await self.upstream.request(
            req.method,
            str(req.path(ctx)),
            route=req.path.source,
            query=query,
            headers=headers,
            body=body,
            # Safe to repeat: a read, a write the mapping declares idempotent, or a keyed write.
            retry_safe=req.method == "GET"
            or req.idempotent
            or any(k.lower() == "idempotency-key" for k in headers),
        )
        if may_need_repair(resp.text):
            # A record holding a lone surrogate or NUL must still read: repaired to U+FFFD.
            resp = replace(resp, data=repaired(resp.data))
        if resp.ok:
            return resp.data
        raise await self._error(resp, req, not_found, kind)

    async def _error(
        self, resp: Response, req: Request, not_found: str | None, kind: str | None
    ) -> GatewayError:
        fields = (await self.object(kind)).fields if kind and resp.status in (400, 422) else ()
        where = f"{req.method} {req.path.source}"
        return translate(self.mapping.errors, resp, where, not_found, fields)


def _changes(obj: ObjectSpec, body: Mapping[str, Any]) -> dict[str, Any]:
    return fm.to_changes(obj.fields, body)


def _custom(body: Mapping[str, Any]) -> dict[str, Any]:
    """A case body without its structural keys: what is left are the case's fields."""
    skip = {"customerId", "customId", "interactions"}
    return {k: v for k, v in body.items() if k not in skip}
