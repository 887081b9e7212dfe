"""Khoros interactions on the upstream record, as pure functions.

An interaction's identity is its key (``service:serviceId``; a digest when those are long or
hold other characters), so no text can stand for another interaction. Each write records the
keys of the interactions it adds where the mapping says (such as a ticket audit's metadata,
which callers cannot write) and renders them into a comment with a marker; caller text is
cleaned of the marker's start first, so it can never match or fake one (a CRM without such a
place relies on the markers). Also: how many interactions one write carries, and the keys of
creates."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.mapping.expr import Template
from gateway.mapping.model import Interactions

_PLAIN = re.compile(r"^[A-Za-z0-9_.@/+=-]{1,64}$")
_PLAIN_ID = re.compile(r"^[A-Za-z0-9_.:@/+=-]{1,96}$")
WORD_JOINER = "\u2060"  # invisible: a cleaned text reads as before, but holds no marker


def key_of(i: Mapping[str, Any]) -> str:
    """The identity of an interaction: ``service:serviceId``, or a digest of both."""
    service, service_id = str(i.get("service", "")), str(i.get("serviceId", ""))
    if _PLAIN.match(service) and _PLAIN_ID.match(service_id):
        return f"{service}:{service_id}"
    digest = hashlib.sha256(json.dumps([service, service_id]).encode()).hexdigest()
    return f"sha256:{digest[:40]}"


def clean(value: Any, prefix: str) -> Any:
    """``value`` (and everything in it) with no text holding ``prefix``, the constant start of
    every marker; the text looks the same."""
    if not prefix:
        return value
    if isinstance(value, str):
        broken = prefix[0] + WORD_JOINER + prefix[1:]
        for _ in range(len(value) + 1):  # a repair can make a new match only by overlap
            if prefix not in value:
                break
            value = value.replace(prefix, broken)
        return value
    if isinstance(value, Mapping):
        return {k: clean(v, prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [clean(v, prefix) for v in value]
    return value


def marker_end(marker: Template, prefix: str) -> str | None:
    """What follows the key in every marker, when a marker is nothing but ``prefix``, the key
    and a constant end, so that the keys in a text can be read back; else None."""
    ends = set()
    for key in ("\x00", "\x01"):
        rendered = str(marker({"key": key, "i": {"service": "\x02", "serviceId": "\x02"}}))
        if not rendered.startswith(prefix + key) or "\x02" in rendered:
            return None
        ends.add(rendered[len(prefix) + 1 :])
    return ends.pop() if len(ends) == 1 else None


def markers(spec: Interactions, text: str) -> list[tuple[str, int, int]]:
    """The markers in ``text``, in order: (key, where it starts, where it ends). Caller text
    is cleaned of the marker's start, so each is one the gateway (or, where callers can write
    the record, someone with access to the CRM) wrote."""
    if not spec.marker_prefix or spec.marker_suffix is None:
        return []
    pattern = re.escape(spec.marker_prefix) + _KEY + re.escape(spec.marker_suffix)
    return [(m.group(1), m.start(), m.end()) for m in re.finditer(pattern, text)]


_KEY = r"(sha256:[0-9a-f]{40}|[A-Za-z0-9_.@/+=-]{1,64}:[A-Za-z0-9_.:@/+=-]{1,96}?)"


@dataclass(frozen=True)
class Prepared:
    """One interaction, ready to write: its key, marker, text, and what the write records."""

    key: str
    marker: str
    text: str
    record: Any


def prepare(spec: Interactions, interactions: Iterable[Mapping[str, Any]]) -> list[Prepared]:
    """The interactions in the caller's order, each key once, rendered from cleaned text."""
    out: dict[str, Prepared] = {}
    for raw in interactions:
        key = key_of(raw)
        if key in out:
            continue
        i = clean({**raw, "author": raw.get("author") or {}}, spec.marker_prefix)
        ctx = {"i": i, "key": key}
        marker = str(spec.marker(ctx)) if spec.marker_prefix else ""
        text = str(spec.template({**ctx, "marker": marker}))
        record = spec.record(ctx) if spec.record is not None else None
        if record is not None and spec.record_bytes and _size([record]) > spec.record_bytes:
            record = {"key": key}  # caller values too long to record: the key alone
        out[key] = Prepared(key, marker, text, record)
    return list(out.values())


def _size(records: list[Any]) -> int:
    return len(json.dumps(records, separators=(",", ":")).encode())


def batches(spec: Interactions, prepared: list[Prepared]) -> list[list[Prepared]]:
    """The interactions split into writes whose records fit `record_bytes` (one write when
    there is no limit); always at least one, maybe empty, batch."""
    if not spec.record_bytes or spec.record is None:
        return [prepared]
    out: list[list[Prepared]] = [[]]
    for p in prepared:
        if out[-1] and _size([x.record for x in [*out[-1], p]]) > spec.record_bytes:
            out.append([])
        out[-1].append(p)
    return out


PENDING = "interactions_pending"  # the ctx key of the Prepared list a write still has to add


def context(spec: Interactions, batch: list[Prepared]) -> dict[str, Any]:
    """What templates see of the interactions one write adds: `comment` (the text, or none),
    `recorded` (what the write records) and `interactions` (key to text)."""
    text = spec.separator.join(p.text for p in batch)
    return {
        PENDING: batch,
        "interactions": {p.key: p.text for p in batch},
        "comment": text or None,
        "recorded": [p.record for p in batch if p.record is not None],
    }


def drop_on_record(
    spec: Interactions, ctx: dict[str, Any], *, texts: Any = None, keys: Any = None
) -> None:
    """Leave out of ctx's write the interactions already on the record: by key (recorded where
    callers cannot write) or by marker in the record's texts."""
    have_keys = {k for k in keys if isinstance(k, str)} if isinstance(keys, list) else set()
    have_texts = [t for t in texts if isinstance(t, str)] if isinstance(texts, list) else []
    left = [
        p
        for p in ctx.get(PENDING, [])
        if p.key not in have_keys and not (p.marker and any(p.marker in t for t in have_texts))
    ]
    ctx.update(context(spec, left))


CASE_STRUCTURE = ("customerId", "customId", "interactions")  # a case body's keys that are no field


def custom(body: Mapping[str, Any]) -> dict[str, Any]:
    """A case body without its structural keys: what is left are the case's fields."""
    return {k: v for k, v in body.items() if k not in CASE_STRUCTURE}


def idempotency_key(body: Mapping[str, Any]) -> str:
    """Same customer, title and interactions: same key, so a repeat returns the same record.
    Without interactions, a customer and a title name no one case (a customer may have many
    "Call back"), so every value of the body is part of its identity: only the whole repeat
    is the same case, and other values make another (docs/behaviour.md §1.7)."""
    interactions = body.get("interactions") or []
    identity: list[Any] = [
        str(body.get("customerId", "")),
        str(body.get("title", "")),
        sorted(key_of(i) for i in interactions),
    ]
    if not interactions:
        identity.append(custom(body))
    # (With interactions, the text is what it always was: keys made before still match.)
    text = json.dumps(identity, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"crm-gateway-{digest[:40]}"


def digest(body: Mapping[str, Any]) -> str:
    """Identical bodies, identical digest: what identical calls are recognised by."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]
