"""Runs the mapping's operations against the upstream: render each step's request, call, read
the answer, map records back; and the reads of the Khoros API (meta, find, search; a case with
the interactions written on it). Knows the caller's API shapes, never a CRM. Best match
(`bestmatch`), the writes (`cases`, `customers`) and Hybrid Chat's priority routing
(`priority_routing`) are services on top of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from gateway import logs
from gateway.cache import Caches
from gateway.errors import (
    AttemptTimedOut,
    BadGateway,
    GatewayError,
    UpdateConflict,
    ValidationFailed,
)
from gateway.exchange import Caller, Response
from gateway.mapping import fields as fm
from gateway.mapping import interactions as im
from gateway.mapping import paging, recorded
from gateway.mapping.codecs import Codecs
from gateway.mapping.discovery import discovered_fields, with_fields
from gateway.mapping.model import FieldSpec, MappingSpec, ObjectSpec, OperationSpec, Request, Step
from gateway.mapping.translate import failed_answer, translate
from gateway.text import may_need_repair, repaired

# Times an operation runs at most: again after a guarded write met a conflict, or after a
# write whose outcome is unknown (its first steps read what the write did).
RESTARTS = 3
# In an operation's context: run the steps that read the interactions written on the record.
_WITH_INTERACTIONS = "_with_interactions"
Enough = Callable[[dict[str, Any]], bool]  # over the steps read so far: stop paging?


class _Restart(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class _OutcomeUnknown(Exception):
    """A write timed out, lost its connection or met a 5xx: it may or may not be applied."""

    def __init__(self, error: GatewayError) -> None:
        self.error = error


class Engine:
    def __init__(
        self,
        mapping: MappingSpec,
        upstream: Caller,
        caches: Caches,
        *,
        settings: Mapping[str, Any],
        upstream_url: str,
        codecs: Codecs,
    ) -> None:
        self.mapping = mapping
        self.codecs = codecs
        self.upstream = upstream
        self.caches = caches
        self.upstream_url = upstream_url
        self.base_ctx = {"settings": dict(settings), "upstream_url": upstream_url}
        self.log = logs.get()
        # Each object with its discovered fields, made once for each load of them.
        self._with_fields: dict[str, tuple[tuple[FieldSpec, ...], ObjectSpec]] = {}

    # -- objects and meta ------------------------------------------------------------------

    async def object(self, kind: str) -> ObjectSpec:
        """The object's fields: the mapping's own plus the upstream's custom fields (cached)."""
        obj = self.mapping.objects[kind]
        if obj.custom_fields is None:
            return obj
        extra = await self.caches["field_definitions"].get(kind, lambda: self._discover(obj))
        made = self._with_fields.get(kind)
        if made is None or made[0] is not extra:
            made = self._with_fields[kind] = (extra, with_fields(obj, extra))
        return made[1]

    async def _discover(self, obj: ObjectSpec) -> tuple[FieldSpec, ...]:
        spec = obj.custom_fields
        assert spec is not None
        # No object: an error answer here is not read by fields, which wait for this very load.
        data = await self.fetch(spec.request, self.base_ctx)
        where = f"{spec.request.method} {spec.request.path.source}"
        return discovered_fields(spec, data, {f.name for f in obj.fields}, where)

    async def meta(self, kind: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.caches["meta"].get(kind, lambda: self._meta(kind))
        return result

    async def _meta(self, kind: str) -> dict[str, Any]:
        return fm.meta_of(await self.object(kind))

    # -- customers -------------------------------------------------------------------------

    async def find_customer(self, id: str) -> dict[str, Any]:
        return await self.run_one("find_customer", await self.object("customer"), {"id": id})

    async def search_customers(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        obj = await self.object("customer")
        return await self.search(obj, fm.search_pairs(obj.fields, body))

    async def search(
        self,
        obj: ObjectSpec,
        pairs: list[tuple[FieldSpec, str]],
        match: str | None = None,
        cases: bool = False,
    ) -> list[dict[str, Any]]:
        """The caller's objects of the records found holding every value: customers, or
        (``cases``) cases, with the mapping's `search_cases`."""
        records = await self.find_records(obj, pairs, match, cases=cases)
        return _distinct(fm.to_object(obj, record, self.base_ctx) for record in records)

    async def find_records(
        self,
        obj: ObjectSpec,
        pairs: list[tuple[FieldSpec, str]],
        match: str | None = None,
        *,
        cases: bool = False,
    ) -> list[dict[str, Any]]:
        """Upstream records (joined) holding every searched value, re-checked: customers, or
        (``cases``) cases. Pages are read until the results run out, or, when a
        searched field is unique, until a record holds the values (no second one can)."""
        searched = fm.normalised(pairs, match, self.codecs)
        if searched is None:
            return []  # a phone number that is none matches no one: no need to ask
        pairs = searched
        terms = fm.search_terms(pairs, self.base_ctx)
        op = self.mapping.search_cases if cases else self.mapping.operations["search_customers"]
        assert op is not None  # the mapping has `search_cases` when a strategy needs it

        def found(data: dict[str, Any]) -> list[dict[str, Any]]:
            listed = op.result(data)
            records = listed if isinstance(listed, list) else []
            join = fm.joiner(obj, data)
            joined = (join(r) for r in records if isinstance(r, Mapping))
            return [r for r in joined if fm.matches(r, pairs, match, codecs=self.codecs)]

        unique = any(f.unique for f, _ in pairs)
        enough: Enough | None = (lambda steps: bool(found({"steps": steps}))) if unique else None
        _, data, _ = await self._records(op, {"terms": terms}, obj, enough)
        return found(data)

    # -- cases -----------------------------------------------------------------------------

    async def find_cases(self, customer_id: str) -> list[dict[str, Any]]:
        """Every case of the customer, newest first (last updated, then the higher id), in
        one order whatever order the upstream lists them in."""
        obj = await self.object("case")
        op = self.mapping.operations["find_cases"]
        records, data, ctx = await self._records(op, {"id": customer_id}, obj)
        cases = {}
        join = fm.joiner(obj, data)
        for r in records:  # a record listed on two pages is one case
            case = fm.to_object(obj, join(r), ctx)
            cases[case["id"]] = case
        return sorted(cases.values(), key=_newest, reverse=True)

    async def find_case(self, id: str, *, interactions: bool = False) -> dict[str, Any]:
        """The case; with ``interactions``, also those the gateway wrote on it (the steps
        that read them run only then)."""
        obj = await self.object("case")
        if not interactions:
            return await self.run_one("find_case", obj, {"id": id})
        case, ctx = await self._one("find_case", obj, {"id": id, _WITH_INTERACTIONS: True})
        op, spec = self.mapping.operations["find_case"], self.mapping.interactions
        writes = [  # a write without records, where the mapping reads them: none
            (None if read.records is None else read.records(w) or [], read.text(w))
            for step in op.steps
            if (read := step.interactions) is not None and step.name in ctx["steps"]
            for w in _listed(read.writes(ctx["steps"][step.name]))
        ]
        return {**case, "interactions": recorded.read_back(spec, writes)}

    def changes(self, obj: ObjectSpec, body: Mapping[str, Any]) -> dict[str, Any]:
        return fm.to_changes(obj.fields, body, codecs=self.codecs)

    def verified(
        self, obj: ObjectSpec, body: Mapping[str, Any], result: dict[str, Any]
    ) -> dict[str, Any]:
        """For CRMs that drop values they do not know (mapping `verify_writes`): every written
        value must be in the record the CRM returns, or the caller hears which were lost."""
        lost = (
            fm.not_kept(obj.fields, body, result, codecs=self.codecs)
            if self.mapping.verify_writes
            else []
        )
        if lost:
            self.log.warning("write_not_kept", fields=[e.name for e in lost])
            raise ValidationFailed("The CRM did not save some values.", fields=lost)
        return result

    # -- running operations ----------------------------------------------------------------

    async def run_one(self, name: str, obj: ObjectSpec, given: Mapping[str, Any]) -> dict[str, Any]:
        """Run an operation whose result is one record of ``obj`` (its fields discovered):
        the caller's object for it."""
        return (await self._one(name, obj, given))[0]

    async def _one(
        self, name: str, obj: ObjectSpec, given: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        op = self.mapping.operations[name]
        ctx = await self._run(op, {**self.base_ctx, **given}, obj)
        record = op.result({"steps": ctx["steps"]})
        if not isinstance(record, Mapping):
            raise BadGateway(detail=f"{name}: the result expression found no record")
        data = {"steps": ctx["steps"]}
        return fm.to_object(obj, fm.join(obj, record, data), ctx), ctx

    async def _records(
        self,
        op: OperationSpec,
        given: Mapping[str, Any],
        obj: ObjectSpec,
        enough: Enough | None = None,
    ) -> tuple[list[Mapping[str, Any]], dict[str, Any], dict[str, Any]]:
        ctx = await self._run(op, {**self.base_ctx, **given}, obj, enough)
        data = {"steps": ctx["steps"]}
        found = op.result(data)
        if found is not None and not isinstance(found, list):
            raise BadGateway(detail=f"{op.name}: the result expression found no list")
        return [r for r in found or [] if isinstance(r, Mapping)], data, ctx

    async def _run(
        self, op: OperationSpec, ctx: dict[str, Any], obj: ObjectSpec, enough: Enough | None = None
    ) -> dict[str, Any]:
        first = dict(ctx)
        for attempt in range(1, RESTARTS + 1):
            steps: dict[str, Any] = {}
            ctx = {**first, "steps": steps}
            try:
                for step in op.steps:
                    if step.when is not None and not step.when(ctx):
                        continue
                    if step.interactions is not None and not ctx.get(_WITH_INTERACTIONS):
                        continue
                    try:
                        steps[step.name] = await self._step(step, ctx, obj, enough)
                    except UpdateConflict:
                        if not step.restart_on_conflict or attempt == RESTARTS:
                            raise
                        raise _Restart("conflict") from None
                    except _OutcomeUnknown as unknown:
                        if attempt == RESTARTS:
                            raise unknown.error from None
                        raise _Restart("outcome_unknown") from None
                    self._leave_out_recorded(step, steps[step.name], ctx)
                return ctx
            except _Restart as restart:
                # The record changed between our read and our write, or our write may have
                # been applied: read it again.
                self.log.info(
                    "operation_restart", operation=op.name, attempt=attempt, reason=restart.reason
                )
        raise AssertionError("unreachable")

    def _leave_out_recorded(self, step: Step, answer: Any, ctx: dict[str, Any]) -> None:
        spec = self.mapping.interactions
        if step.recorded_interactions is not None:
            im.drop_on_record(spec, ctx, keys=step.recorded_interactions(answer))
        if step.existing_interactions is not None:
            im.drop_on_record(spec, ctx, texts=step.existing_interactions(answer))

    async def _step(
        self, step: Step, ctx: dict[str, Any], obj: ObjectSpec, enough: Enough | None = None
    ) -> Any:
        if step.paginate is not None:
            return await self._pages(step, ctx, obj, enough)
        if step.for_each is None:
            answer = await self.fetch(
                step.request,
                ctx,
                not_found=step.not_found,
                obj=obj,
                unknown=step.restart_on_unknown,
            )
            if step.answer_messages is not None and step.answer_failed is not None:
                where = f"{step.request.method} {step.request.path.source}"
                failure = failed_answer(
                    step.answer_messages(answer), step.answer_failed, obj.fields, where
                )
                if failure is not None:
                    raise failure
            return answer
        items = step.for_each(ctx) or []
        return [
            await self.fetch(step.request, {**ctx, "item": item}, not_found=step.not_found, obj=obj)
            for item in items
        ]

    async def _pages(
        self, step: Step, ctx: dict[str, Any], obj: ObjectSpec, enough: Enough | None
    ) -> list[Any]:
        """Every page of a step (its answer is the list of them), within the budget."""
        assert step.paginate is not None

        async def get(page: paging.Next | None) -> Any:
            return await self.fetch(step.request, ctx, not_found=step.not_found, obj=obj, page=page)

        def done(pages: list[Any]) -> bool:
            return enough is not None and enough({**ctx["steps"], step.name: pages})

        return await paging.every_page(step, get, self.upstream_url, done if enough else None)

    async def fetch(
        self,
        req: Request,
        ctx: Mapping[str, Any],
        *,
        not_found: str | None = None,
        obj: ObjectSpec | None = None,
        page: paging.Next | None = None,
        unknown: bool = False,
    ) -> Any:
        """One upstream request: its parsed JSON answer, or the gateway error it means.
        ``obj``: the object the request is about (its fields name the CRM's validation
        errors). ``page``: another page of it. ``unknown``: a write whose failure leaves its
        outcome unknown raises _OutcomeUnknown, so that the operation reads again."""
        query = {k: str(v) for k, v in req.query(ctx).items() if v is not None}
        path = str(req.path(ctx))
        if page is not None:
            path, query = page.path or path, {**({} if page.path else query), **page.query}
        headers = {k: str(v) for k, v in req.headers(ctx).items() if v}
        body = req.body(ctx) if req.body is not None else None
        try:
            resp = await self.upstream.request(
                req.method,
                path,
                route=req.path.source,
                query=query,
                headers=headers,
                body=body,
                # Safe to repeat: a read, a write the mapping declares idempotent, or a keyed
                # write.
                retry_safe=req.method == "GET"
                or req.idempotent
                or any(k.lower() == "idempotency-key" for k in headers),
            )
        except (AttemptTimedOut, BadGateway) as exc:
            if unknown:
                raise _OutcomeUnknown(exc) from None
            raise
        if may_need_repair(resp.text):
            # A record holding a lone surrogate or NUL must still read: repaired to U+FFFD.
            resp = replace(resp, data=repaired(resp.data))
        if resp.ok:
            return resp.data
        error = self._error(resp, req, not_found, obj)
        if unknown and resp.status >= 500:
            raise _OutcomeUnknown(error)
        raise error

    def _error(
        self, resp: Response, req: Request, not_found: str | None, obj: ObjectSpec | None
    ) -> GatewayError:
        fields = obj.fields if obj is not None and resp.status in (400, 422) else ()
        return translate(self.mapping.errors, resp, req.method, req.path.source, not_found, fields)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _distinct(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each object once (by its id), where it first came."""
    first: dict[str, dict[str, Any]] = {}
    for o in objects:
        first.setdefault(str(o["id"]), o)
    return list(first.values())


def _newest(case: Mapping[str, Any]) -> tuple[str, int, str]:
    id = str(case["id"])
    return (str(case.get("lastUpdated") or ""), int(id) if id.isdigit() else -1, id)
