"""Custom fields the upstream defines, discovered at run time: each definition in the answer of
an object's `custom_fields.request` becomes a field, as the mapping's `custom_fields` says. The
engine caches what this makes; `crm-gateway check --online` compares it with the mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gateway.errors import BadGateway, MappingFailed
from gateway.mapping.expr import ExprError, Path, Template, compile_tree
from gateway.mapping.model import CustomFields, FieldSpec, ListWrite, ObjectSpec


def discovered_field(spec: CustomFields, item: Mapping[str, Any]) -> FieldSpec | None:
    """The field an upstream custom field definition becomes, or None for a type we skip.
    A definition without a type or a name is not one: ValueError."""
    ctx = {"item": item}
    given = spec.type(ctx)
    if given in (None, ""):
        raise ValueError("the definition has no type")
    kind = spec.types.get(str(given))
    if kind is None:
        return None
    raw = {k: v for k, v in spec.field.items() if k not in ("options", "search")}
    made = compile_tree(raw)(ctx)
    if made.get("name") in (None, ""):
        raise ValueError("the definition gives the field no name")
    write = made.get("write")
    options = Path(spec.field["options"])(item) if "options" in spec.field else None
    search = Template(spec.field["search"]) if "search" in spec.field else None
    return FieldSpec(
        name=str(made["name"]),
        label=str(made.get("label") or made["name"]),
        read=Path(str(made["read"])),
        type=kind["type"],
        write=ListWrite(write["list"], write["item"]) if isinstance(write, dict) else write,
        codec=kind.get("codec", "string"),
        searchable=bool(made.get("searchable", False)),
        # `value` is known only per search: bind the definition and render then.
        search=None if search is None else (lambda c: search({**c, "item": item})),
        options=tuple((str(o["name"]), str(o["value"])) for o in options or []),
        error_key=str(made["error_key"]) if made.get("error_key") is not None else None,
    )


def discovered_fields(
    spec: CustomFields, data: Any, taken: set[str], where: str
) -> tuple[FieldSpec, ...]:
    """The fields an upstream answer of custom field definitions makes (names in ``taken`` are
    skipped). An answer of another shape (no list where `items` points, an entry that is not an
    object or makes no named field) is the upstream's error, not a CRM without custom fields:
    it must not be cached in place of the real definitions."""
    items = spec.items(data)
    if not isinstance(items, list):
        raise BadGateway(detail=f"{where}: `items` found no list of field definitions")
    found = []
    for n, item in enumerate(items):
        try:
            f = discovered_field(spec, item) if isinstance(item, Mapping) else None
            malformed = not isinstance(item, Mapping)
        except (ExprError, KeyError, TypeError, ValueError, MappingFailed):
            malformed = True
        if malformed:
            raise BadGateway(detail=f"{where}: field definition {n} is not one the mapping reads")
        if f is not None and f.name not in taken:
            taken.add(f.name)
            found.append(f)
    return tuple(found)


def with_fields(obj: ObjectSpec, extra: tuple[FieldSpec, ...]) -> ObjectSpec:
    return replace(obj, fields=obj.fields + extra)
