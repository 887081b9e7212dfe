"""The mapping's `expertflow` section (priority routing, docs/behaviour.md §2): where labels come
from, which labels a customer carries, and how a customer record becomes Hybrid Chat's customer
object. Compiled at load; the object builders are pure functions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.errors import BadGateway
from gateway.mapping.codecs import PhoneNumbers
from gateway.mapping.expr import Path, Template

if TYPE_CHECKING:
    from gateway.mapping.model import Request
    from gateway.mapping.spec import _Compiler
    from gateway.yamlfile import PathKey

CUSTOMER_KEYS = ("first_name", "last_name", "email", "createdAt", "updatedAt")


@dataclass(frozen=True)
class LabelSource:
    lookup: Request | None  # asked first; its answer is `lookup` in `request`'s templates
    request: Request | None  # labels read from the upstream, or
    declared: tuple[tuple[str, str], ...]  # a declared set of (key, name)
    items: Path | None
    key: Path
    name: Path
    of_customer: Path
    names: Mapping[str, str]
    colors: Mapping[str, str]
    default_color: str


@dataclass(frozen=True)
class RoutingSpec:
    phone_field: str
    updated: Path
    customer: Mapping[str, Template]
    phones: Template | None
    labels: LabelSource


def compile_routing(c: _Compiler, raw: Mapping[str, Any], customer_fields: set[str]) -> RoutingSpec:
    path: PathKey = ("expertflow",)
    if raw["phone_field"] not in customer_fields:
        raise c.doc.error((*path, "phone_field"), f"no customer field named '{raw['phone_field']}'")
    lab = raw["labels"]
    lp: PathKey = (*path, "labels")
    if ("request" in lab) == ("declared" in lab):
        raise c.doc.error(lp, "give either `request` and `items`, or `declared`")
    if "request" in lab and "items" not in lab:
        raise c.doc.error((*lp, "items"), "labels read from a request need `items`")
    customer = raw.get("customer", {})
    return RoutingSpec(
        phone_field=raw["phone_field"],
        updated=c.jmespath(raw.get("updated", "updated_at"), (*path, "updated")),
        customer={
            k: c.template(v, (*path, "customer", k)) for k, v in customer.items() if k != "phones"
        },
        phones=c.template(customer["phones"], (*path, "customer", "phones"))
        if "phones" in customer
        else None,
        labels=LabelSource(
            lookup=c.request(lab["lookup"], (*lp, "lookup")) if "lookup" in lab else None,
            request=c.request(lab["request"], (*lp, "request")) if "request" in lab else None,
            declared=tuple(
                (str(d["key"]), str(d.get("name", d["key"]))) for d in lab.get("declared", [])
            ),
            items=c.jmespath(lab["items"], (*lp, "items")) if "items" in lab else None,
            key=c.jmespath(lab.get("key", "value"), (*lp, "key")),
            name=c.jmespath(lab.get("name", "name"), (*lp, "name")),
            of_customer=c.jmespath(lab["of_customer"], (*lp, "of_customer")),
            names=lab.get("names", {}),
            colors=lab.get("colors", {}),
            default_color=lab.get("default_color", "#a9a9a9"),
        ),
    )


def label_id(upstream: str, key: str) -> str:
    """A Mongo-style 24-hex id derived from the upstream's identity of the label: the same on
    every restart and every replica."""
    return hashlib.sha256(f"{upstream}\x00{key}".encode()).hexdigest()[:24]


def label_entries(spec: LabelSource, data: Any) -> list[tuple[str, str]]:
    """(key, name) of every label, from the upstream answer or the declared set. An answer of
    another shape (no list where `items` points, an entry without a key) is the upstream's
    error, not "no labels": it must not be cached in place of the real labels."""
    if spec.request is None:
        return list(spec.declared)
    found = spec.items(data) if spec.items else None
    where = f"{spec.request.method} {spec.request.path.source}"
    if not isinstance(found, list):
        raise BadGateway(detail=f"{where}: `items` found no list of labels")
    out = []
    for n, item in enumerate(found):
        key, name = spec.key(item), spec.name(item)
        if isinstance(key, dict | list) or key in (None, ""):
            raise BadGateway(detail=f"{where}: label {n} has no key")
        out.append((str(key), str(name if name is not None else key)))
    return out


def label_objects(
    spec: LabelSource, upstream: str, entries: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    return [
        {
            "_id": label_id(upstream, key),
            "name": spec.names.get(key, name),
            "color_code": spec.colors.get(key, spec.default_color),
            "created_by": "",
            "updated_by": "",
            "createdAt": "",
            "updatedAt": "",
            "__v": 0,
        }
        for key, name in entries
    ]


def customer_labels(spec: LabelSource, record: Mapping[str, Any], known: set[str]) -> list[str]:
    """The label keys a customer record carries, limited to the known labels."""
    found = spec.of_customer(record)
    keys = found if isinstance(found, list) else [found]
    return [str(k) for k in dict.fromkeys(keys) if k is not None and str(k) in known]


def customer_object(
    spec: RoutingSpec,
    record: Mapping[str, Any],
    phone: str,
    labels: list[str],
    numbers: PhoneNumbers,
) -> dict[str, Any]:
    """Hybrid Chat's customer object: every documented key, empty strings where unknown, the
    matched number in phone1 and the customer's other numbers after it, each number once."""
    ctx = {"record": record}
    values = {k: _text(t(ctx)) for k, t in spec.customer.items()}
    phones = spec.phones(ctx) if spec.phones else []
    others: dict[str, str] = {}  # one number (E.164, or as written if none) -> as written
    for p in phones if isinstance(phones, list) else []:
        if p and not numbers.same(p, phone):
            others.setdefault(numbers.e164(p) or str(p), str(p))
    out: dict[str, Any] = {"_id": str(record.get("id", ""))}
    out.update({k: values.get(k, "") for k in ("first_name", "last_name", "email")})
    found = [phone, *others.values()][:5]
    out.update({f"phone{i}": found[i - 1] if i <= len(found) else "" for i in range(1, 6)})
    out["labels"] = labels
    out.update(created_by="", updated_by="")
    out["createdAt"] = _timestamp(values.get("createdAt", ""))
    out["updatedAt"] = _timestamp(values.get("updatedAt", ""))
    out["__v"] = 0
    return out


def not_found_object(phone: str) -> dict[str, Any]:
    """The answer for an unknown number when configured to answer 200: no labels."""
    return {
        "_id": "",
        "first_name": "",
        "last_name": "",
        "email": "",
        **{f"phone{i}": phone if i == 1 else "" for i in range(1, 6)},
        "labels": [],
        "created_by": "",
        "updated_by": "",
        "createdAt": "",
        "updatedAt": "",
        "__v": 0,
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _timestamp(value: str) -> str:
    """ISO-8601 UTC with milliseconds, as Hybrid Chat's own objects carry them."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    parsed = parsed.replace(tzinfo=parsed.tzinfo or UTC).astimezone(UTC)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.") + f"{parsed.microsecond // 1000:03d}Z"
