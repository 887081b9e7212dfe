"""Hybrid Chat's priority routing (docs/behaviour.md §2), as a service beside the engine: the
customer a phone number belongs to, as Hybrid Chat's customer object with the ids of its labels,
and every label. It runs on the engine (its searches, its caches) and the mapping's `expertflow`
section (`PriorityRoutingSpec`); the objects are built by the pure functions below it."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gateway import logs
from gateway.config import UnknownNumber
from gateway.errors import BadGateway, NotFound
from gateway.mapping.codecs import PhoneNumbers
from gateway.mapping.engine import Engine
from gateway.mapping.model import LabelSource, PriorityRoutingSpec


class PriorityRouting:
    def __init__(
        self, engine: Engine, spec: PriorityRoutingSpec, *, not_found: UnknownNumber
    ) -> None:
        """``not_found``: what a number nobody has gets, an error (404) or an empty object."""
        self.spec = spec
        self.engine = engine
        self.not_found = not_found
        self.log = logs.get()
        # The label objects of the entries last cached: made once per load of them.
        self._objects: tuple[list[tuple[str, str]], list[dict[str, Any]]] | None = None

    async def _entries(self) -> list[tuple[str, str]]:
        source = self.spec.labels
        ctx = dict(self.engine.base_ctx)
        if source.lookup is not None:
            ctx["lookup"] = await self.engine.fetch(source.lookup, ctx)
        data = await self.engine.fetch(source.request, ctx) if source.request else None
        return label_entries(source, data)

    async def entries(self) -> list[tuple[str, str]]:
        """(key, name) of every label, cached."""
        cache = self.engine.caches["labels"]
        found: list[tuple[str, str]] = await cache.get("labels", self._entries)
        return found

    async def labels(self) -> list[dict[str, Any]]:
        entries = await self.entries()
        made = self._objects
        if made is None or made[0] is not entries:
            objects = label_objects(self.spec.labels, self.engine.mapping.name, entries)
            made = self._objects = (entries, objects)
        return made[1]

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
            return not_found_object(phone)
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
        keys = customer_labels(self.spec.labels, chosen, known)
        ids = [label_id(self.engine.mapping.name, k) for k in keys]
        matched = next(
            (str(v) for v in (field.read(chosen),) if v and self.phones.same(v, phone)), phone
        )
        return customer_object(self.spec, chosen, matched, ids, self.phones)


# -- Hybrid Chat's objects, as pure functions ------------------------------------------------------


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
    spec: PriorityRoutingSpec,
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
