"""Compiling a mapping's `expertflow` section (Hybrid Chat's priority routing, docs/mappings.md):
the customer templates over the CRM's record, and where the labels come from. Part of loading a
mapping (`gateway.mapping.spec`); every problem is reported at its file, line and key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.mapping.compiler import Compiler
from gateway.mapping.model import LabelSource, PriorityRoutingSpec, Request
from gateway.yamlfile import PathKey


def priority_routing(
    c: Compiler, raw: Mapping[str, Any], customer_fields: set[str]
) -> PriorityRoutingSpec:
    path: PathKey = ("expertflow",)
    if raw["phone_field"] not in customer_fields:
        problem = f"no customer field named '{raw['phone_field']}'"
        raise c.doc.error((*path, "phone_field"), problem)
    customer = raw.get("customer", {})
    return PriorityRoutingSpec(
        phone_field=raw["phone_field"],
        updated=c.jmespath(raw.get("updated", "updated_at"), (*path, "updated")),
        customer={
            k: c.template(v, (*path, "customer", k)) for k, v in customer.items() if k != "phones"
        },
        phones=c.template(customer["phones"], (*path, "customer", "phones"))
        if "phones" in customer
        else None,
        labels=label_source(c, raw["labels"], (*path, "labels")),
    )


def label_source(c: Compiler, raw: Mapping[str, Any], path: PathKey) -> LabelSource:
    if ("request" in raw) == ("declared" in raw):
        raise c.doc.error(path, "give either `request` and `items`, or `declared`")
    if "request" in raw and "items" not in raw:
        raise c.doc.error((*path, "items"), "labels read from a request need `items`")

    def request(key: str) -> Request | None:
        return c.request(raw[key], (*path, key)) if key in raw else None

    return LabelSource(
        lookup=request("lookup"),
        request=request("request"),
        declared=tuple(
            (str(d["key"]), str(d.get("name", d["key"]))) for d in raw.get("declared", [])
        ),
        items=c.jmespath(raw["items"], (*path, "items")) if "items" in raw else None,
        key=c.jmespath(raw.get("key", "value"), (*path, "key")),
        name=c.jmespath(raw.get("name", "name"), (*path, "name")),
        of_customer=c.jmespath(raw["of_customer"], (*path, "of_customer")),
        names=raw.get("names", {}),
        colors=raw.get("colors", {}),
        default_color=raw.get("default_color", "#a9a9a9"),
    )
