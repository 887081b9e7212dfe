"""Loading a mapping file: validated against the schema and compiled once, at load, into the
model of `gateway.mapping.model`; every problem is reported at its file, line and key."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path as FilePath
from typing import Any

from gateway import yamlfile
from gateway.api import OPERATIONS
from gateway.mapping import interactions as im
from gateway.mapping import recorded, routing_spec
from gateway.mapping.codecs import CODECS, MATCHES
from gateway.mapping.compiler import Compiler
from gateway.mapping.expr import Path
from gateway.mapping.field_types import FIELD_TYPES
from gateway.mapping.model import (
    SETTLE_SECONDS,
    AuthRule,
    CustomFields,
    ErrorSpec,
    FieldSpec,
    Interactions,
    Join,
    ListWrite,
    MappingSpec,
    ObjectSpec,
    OperationSpec,
    Paging,
    RateLimitSpec,
    Step,
    Strategy,
    WrittenInteractions,
)
from gateway.yamlfile import PathKey

# What the mapping holds for each operation of the API that it runs (gateway.api): steps whose
# result is a record or records, or best-match strategies.
MAPPED = {op.name: op.mapped for op in OPERATIONS if op.mapped is not None}
(STRATEGIES,) = (name for name, kind in MAPPED.items() if kind == "strategies")
CASE_FIELDS = ("number", "customerId", "title", "description", "created", "lastUpdated", "status")
RESERVED = {"customer": {"id", "url", "uri"}, "case": {"id", "url", "linkUrl", "interactions"}}


class _Compiler(Compiler):
    """Compiles the sections of one mapping file; every compile error is reported at its
    key."""

    def field(self, raw: Mapping[str, Any], path: PathKey) -> FieldSpec:
        write = raw.get("write")
        if isinstance(write, dict):
            write = ListWrite(write["list"], write["item"])
        search = raw.get("search")
        options = raw.get("options") or []
        if raw.get("searchable") and not search:
            raise self.doc.error((*path, "search"), "a searchable field needs a search template")
        extension = raw.get("extension")
        if extension is not None and raw.get("codec") != "phone":
            raise self.doc.error((*path, "extension"), "only a field with `codec: phone` has one")
        if isinstance(extension, dict):
            extension = ListWrite(extension["list"], extension["item"])
        return FieldSpec(
            name=raw["name"],
            label=raw.get("label", raw["name"]),
            read=self.jmespath(raw["read"], (*path, "read")),
            type=raw.get("type", "text"),
            write=write,
            extension=extension,
            codec=raw.get("codec", "string"),
            searchable=bool(raw.get("searchable", False)),
            search=None if search is None else self.template(search, (*path, "search")),
            match=raw.get("match", "exact"),
            map=raw.get("map", {}),
            map_out=raw.get("map_out") or {v: k for k, v in raw.get("map", {}).items()},
            options=tuple((str(o["name"]), str(o["value"])) for o in options),
            error_key=raw.get("error_key"),
            error_match=self.regex(raw["error_match"], (*path, "error_match"))
            if "error_match" in raw
            else None,
            meta=raw.get("meta", True),
            unique=bool(raw.get("unique", False)),
        )

    def obj(self, kind: str, raw: Mapping[str, Any]) -> ObjectSpec:
        path: PathKey = ("objects", kind)
        fields = tuple(self.field(f, (*path, "fields", i)) for i, f in enumerate(raw["fields"]))
        seen: set[str] = set()
        for i, f in enumerate(fields):
            where = (*path, "fields", i, "name")
            if f.name in seen:
                raise self.doc.error(where, f"field '{f.name}' is defined twice")
            if f.name in RESERVED[kind]:
                raise self.doc.error(where, f"'{f.name}' is a core property; set it with `{kind}`")
            seen.add(f.name)
        if kind == "case":
            missing = [n for n in CASE_FIELDS if n not in seen]
            if missing:
                raise self.doc.error((*path, "fields"), f"case needs fields {', '.join(missing)}")
        joins = {
            name: Join(
                source=self.jmespath(j["from"], (*path, "join", name, "from")),
                where=j["where"],
                equals=self.jmespath(j["equals"], (*path, "join", name, "equals")),
                one=bool(j.get("one", False)),
            )
            for name, j in (raw.get("join") or {}).items()
        }
        if kind != "customer" and "created_at" in raw:
            raise self.doc.error((*path, "created_at"), "only a customer has it")
        if kind not in ("customer", "case") and "settle_seconds" in raw:
            raise self.doc.error((*path, "settle_seconds"), "only a customer and a case have it")
        custom = raw.get("custom_fields")
        cpath = (*path, "custom_fields")
        created = raw.get("created_at")
        return ObjectSpec(
            kind=kind,
            id=self.jmespath(raw["id"], (*path, "id")),
            url=self.template(raw["url"], (*path, "url")),
            fields=fields,
            joins=joins,
            custom_fields=None
            if custom is None
            else CustomFields(
                request=self.request(custom["request"], (*cpath, "request")),
                items=self.jmespath(custom["items"], (*cpath, "items")),
                type=self.template(custom["type"], (*cpath, "type")),
                field=self._checked_field_template(custom["field"], (*cpath, "field")),
                types=custom["types"],
            ),
            created_at=None if created is None else self.jmespath(created, (*path, "created_at")),
            settle_seconds=float(raw.get("settle_seconds", SETTLE_SECONDS)),
        )

    def _checked_field_template(self, raw: Mapping[str, Any], path: PathKey) -> Mapping[str, Any]:
        # Compile once here so a broken template fails at load, not at the first discovery.
        self.tree({k: v for k, v in raw.items() if k != "options"}, path)
        if "options" in raw:
            self.jmespath(raw["options"], (*path, "options"))
        return raw

    def paging(self, step: Mapping[str, Any], path: PathKey) -> Paging | None:
        raw = step.get("paginate")
        if raw is None:
            return None
        pp = (*path, "paginate")
        if "for_each" in step:
            raise self.doc.error(pp, "a step with for_each cannot also paginate")

        def expr(key: str) -> Path | None:
            return self.jmespath(raw[key], (*pp, key)) if key in raw else None

        return Paging(
            next_url=expr("next_url"),
            cursor=expr("cursor"),
            cursor_param=raw.get("cursor_param"),
            page_param=raw.get("page_param"),
            more=expr("more"),
            max_pages=int(raw.get("max_pages", 10)),
        )

    def interactions(self, raw: Mapping[str, Any]) -> Interactions:
        path: PathKey = ("interactions",)
        marker = self.template(raw["marker"], (*path, "marker"))
        prefix = ""
        if raw["marker"]:
            # Rendered with a sentinel for every value: what comes before it is constant.
            sentinel = "\x00"
            probe = {"key": sentinel, "i": {"service": sentinel, "serviceId": sentinel}}
            prefix = str(marker(probe)).split(sentinel, 1)[0]
            if len(prefix) < 2:
                raise self.doc.error(
                    (*path, "marker"), "a marker must start with at least 2 constant characters"
                )
        record = raw.get("record")
        return Interactions(
            marker=marker,
            template=self.template(raw["template"], (*path, "template")),
            separator=raw.get("separator", "\n\n"),
            marker_prefix=prefix,
            marker_suffix=im.marker_end(marker, prefix) if prefix else None,
            record=None if record is None else self.template(record, (*path, "record")),
            record_bytes=int(raw.get("record_bytes", 0)),
            parse=self._parse(raw["parse"], (*path, "parse")) if "parse" in raw else None,
        )

    def _parse(self, pattern: str, path: PathKey) -> re.Pattern[str]:
        compiled = self.regex(pattern, path)
        unknown = sorted(set(compiled.groupindex) - recorded.PARTS)
        if unknown:
            raise self.doc.error(path, f"no part of an interaction is named {', '.join(unknown)}")
        return compiled

    def strategies(
        self, raw: Mapping[str, Any], objects: Mapping[str, ObjectSpec]
    ) -> tuple[Strategy, ...]:
        fields = {kind: {f.name: f for f in o.fields} for kind, o in objects.items()}
        out = []
        for i, s in enumerate(raw["strategies"]):
            sp: PathKey = ("operations", STRATEGIES, "strategies", i)
            find, field = s.get("find", "customers"), s.get("field")
            kind = {"customers": "customer", "cases": "case"}.get(find)
            if kind is None and field is not None:
                raise self.doc.error((*sp, "field"), "`find: case` reads the case by its id")
            if kind is not None and field not in fields[kind]:
                raise self.doc.error((*sp, "field"), f"no {kind} field named '{field}'")
            if find == "cases" and fields["case"][str(field)].search is None:
                raise self.doc.error((*sp, "field"), f"case field '{field}' has no `search`")
            if find == "cases" and "search_cases" not in raw:
                raise self.doc.error(sp, "`find: cases` needs the bestmatch's `search_cases`")
            values = self.expression(s["values"], (*sp, "values"))
            out.append(Strategy(find, field, values, s.get("match"), int(s.get("score", 1))))
        return tuple(out)

    def operation(
        self, name: str, raw: Mapping[str, Any], result: str, at: PathKey = ()
    ) -> OperationSpec:
        """``result``: what the operation's result must be, `record` or `records`; ``at``:
        where it is, when not at `operations.<name>`."""
        path: PathKey = at or ("operations", name)
        steps = []
        names: set[str] = set()
        for i, s in enumerate(raw["steps"]):
            sp = (*path, "steps", i)
            if s["name"] in names:
                raise self.doc.error((*sp, "name"), f"step '{s['name']}' is defined twice")
            names.add(s["name"])
            steps.append(self.step(s, sp))
        (key, expr), *_ = raw["result"].items()
        if key != result:
            raise self.doc.error((*path, "result", key), f"this operation needs `{result}`")
        return OperationSpec(name, tuple(steps), self.jmespath(expr, (*path, "result", key)))

    def step(self, s: Mapping[str, Any], sp: PathKey) -> Step:
        def given(key: str, compile: Callable[[Any, PathKey], Any], *sub: str) -> Any:
            if key not in s:
                return None
            return compile(s[key][sub[0]] if sub else s[key], (*sp, key, *sub))

        return Step(
            name=s["name"],
            request=self.request(s["request"], (*sp, "request")),
            when=given("when", self.expression),
            for_each=given("for_each", self.expression),
            not_found=s.get("not_found"),
            existing_interactions=given("existing_interactions", self.jmespath),
            restart_on_conflict=s.get("on_conflict") == "restart",
            answer_messages=given("answer_errors", self.jmespath, "messages"),
            answer_failed=given("answer_errors", self.regex, "failed"),
            paginate=self.paging(s, sp),
            recorded_interactions=given("recorded_interactions", self.jmespath),
            restart_on_unknown=s.get("on_unknown") == "restart",
            interactions=given("interactions", self._written),
        )

    def _written(self, raw: Mapping[str, Any], path: PathKey) -> WrittenInteractions:
        def expr(key: str) -> Path:
            return self.jmespath(raw[key], (*path, key))

        return WrittenInteractions(
            expr("writes"), expr("text"), expr("records") if "records" in raw else None
        )


def mapping_schema() -> dict[str, Any]:
    """The mapping file's schema, with the names the registries define filled in, so that a
    codec, a matcher or a field type is added in one place."""
    schema = yamlfile.schema("mapping")
    schema["$defs"]["meta_type"]["enum"] = list(FIELD_TYPES)
    operations = schema["properties"]["operations"]
    for name, kind in MAPPED.items():
        operations["properties"][name] = {"$ref": f"#/$defs/{kind}"}
    operations["required"] = list(MAPPED)
    schema["$defs"]["codec"]["enum"] = list(CODECS)
    schema["$defs"]["match"]["enum"] = list(MATCHES)
    return schema


def load_mapping(file: str | FilePath) -> MappingSpec:
    doc = yamlfile.load(file)
    yamlfile.validate(doc, mapping_schema())
    c = _Compiler(doc)
    raw = doc.data
    objects = {kind: c.obj(kind, raw["objects"][kind]) for kind in ("customer", "case")}
    customer_fields = {f.name for f in objects["customer"].fields}
    bestmatch = raw["operations"][STRATEGIES]
    operations = {
        name: c.operation(name, raw["operations"][name], kind)
        for name, kind in MAPPED.items()
        if kind != "strategies"
    }
    cases = bestmatch.get("search_cases")
    errors = raw.get("errors", {})
    inter = raw.get("interactions") or {"marker": "", "template": "{{ i.body }}"}
    auth = tuple(
        AuthRule(
            when=c.expression(r["when"], ("auth", i, "when")),
            headers=c.tree(r.get("headers", {}), ("auth", i, "headers")),
            basic=(
                c.template(r["basic"]["username"], ("auth", i, "basic", "username")),
                c.template(r["basic"]["password"], ("auth", i, "basic", "password")),
            )
            if "basic" in r
            else None,
        )
        for i, r in enumerate(raw.get("auth", []))
    )
    return MappingSpec(
        file=str(file),
        name=raw["name"],
        auth=auth,
        headers=c.tree(raw.get("headers", {}), ("headers",)),
        oauth_token_url=(raw.get("oauth") or {}).get("token_url"),
        readiness=c.request(raw["readiness"], ("readiness",)) if "readiness" in raw else None,
        errors=ErrorSpec(
            **{
                k: c.jmespath(errors[k], ("errors", k)) if k in errors else None
                for k in ("type", "message", "fields", "field_message", "field_key", "messages")
            },
            idempotency_mismatch=errors.get("idempotency_mismatch"),
        ),
        objects=objects,
        interactions=c.interactions(inter),
        operations=operations,
        strategies=c.strategies(bestmatch, objects),
        priority_routing=routing_spec.priority_routing(c, raw["expertflow"], customer_fields)
        if "expertflow" in raw
        else None,
        verify_writes=bool(raw.get("verify_writes", False)),
        rate_limits=_rate_limits(c, raw["rate_limits"]) if "rate_limits" in raw else None,
        search_cases=None
        if cases is None
        else c.operation(
            "search_cases", cases, "records", ("operations", STRATEGIES, "search_cases")
        ),
    )


DEFAULT_SCOPE = "{{ method }} {{ path }}"  # one record's writes, or one endpoint's reads


def _rate_limits(c: _Compiler, raw: Mapping[str, Any]) -> RateLimitSpec:
    return RateLimitSpec(
        narrow=c.jmespath(raw["narrow"], ("rate_limits", "narrow")),
        scope=c.template(raw.get("scope", DEFAULT_SCOPE), ("rate_limits", "scope")),
    )
