"""The interactions the gateway wrote on a case, read back as Khoros's Interaction objects
(docs/behaviour.md §1.5). Pure functions over what a case's history holds, write by write.

Which interactions are there comes from where the gateway recorded them, never from text a
caller could forge: a write's records (such as a ticket audit's metadata, which callers cannot
write), or, where the CRM has no such place, the markers in the write's text, which caller
text is cleaned of before it is written (`interactions.clean`). What each one said (its author,
body, link) is read from its own part of the text, the part that ends at its marker, with the
mapping's `interactions.parse`; what a record holds beats what the text says."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.mapping.codecs import CODECS
from gateway.mapping.interactions import WORD_JOINER, markers
from gateway.mapping.model import Interactions

AUTHOR = ("service", "serviceId", "handle", "name", "brandOwned")
# The parts of an interaction that `interactions.parse` (and a record) may name; `author_*`
# are its author's.
PARTS = {"created", "body", "linkUrl", "serviceId", "service", "contentType"} | {
    f"author_{k}" for k in AUTHOR
}
Write = tuple[Any, Any]  # (its records, or None where the CRM has no place for them; its text)


def read_back(spec: Interactions, writes: Iterable[Write]) -> list[dict[str, Any]]:
    """Every interaction the writes added, each once, oldest first (by `created`; ties, and
    after them those whose time nothing tells, in the order they were written)."""
    found: dict[str, dict[str, Any]] = {}
    for records, text in writes:
        text = text if isinstance(text, str) else ""
        parts = _texts(spec, text)
        keyed = _records(records) if records is not None else [{"key": k} for k in parts]
        for record in keyed:
            key = record["key"]
            if key not in found:
                found[key] = _interaction(key, record, _parsed(spec, parts.get(key)))
    return sorted(found.values(), key=lambda i: (not i["created"], str(i["created"])))


def _records(records: Any) -> list[Mapping[str, Any]]:
    listed = records if isinstance(records, list) else []
    return [r for r in listed if isinstance(r, Mapping) and isinstance(r.get("key"), str)]


def _texts(spec: Interactions, text: str) -> dict[str, str]:
    """Each marker's key, and its interaction's text: what comes after the marker before it
    (and the separator), up to the marker itself."""
    out: dict[str, str] = {}
    after = 0
    for key, start, end in markers(spec, text):
        own = text[after:start]
        if spec.separator and own.startswith(spec.separator):
            own = own[len(spec.separator) :]
        out.setdefault(key, own.strip())
        after = end
    return out


def _parsed(spec: Interactions, text: str | None) -> dict[str, str]:
    if spec.parse is None or text is None:
        return {}
    match = spec.parse.fullmatch(text)
    if match is None:
        return {}
    # The caller's text as it was sent: what cleaning made of a marker's start, undone.
    prefix = spec.marker_prefix
    cleaned = prefix[:1] + WORD_JOINER + prefix[1:]
    return {
        k: v.replace(cleaned, prefix) if prefix else v
        for k, v in match.groupdict().items()
        if v is not None
    }


def _interaction(key: str, record: Mapping[str, Any], parts: Mapping[str, str]) -> dict[str, Any]:
    # The key is `service:serviceId` unless it is a digest (`sha256:...`) of long or odd ones.
    service, _, service_id = ("", "", "") if key.startswith("sha256:") else key.partition(":")

    def text(name: str, *first: str) -> str:
        for value in (*first, record.get(name), parts.get(name)):
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
        return ""

    brand = record.get("author_brandOwned")
    created = text("created")
    interaction = {
        "created": CODECS["datetime"][0](created) if created else "",
        "body": text("body"),
        "linkUrl": text("linkUrl"),
        "serviceId": text("serviceId", service_id),
        "service": text("service", service),
        "contentType": text("contentType"),
    }
    interaction["author"] = {
        "service": text("author_service") or interaction["service"],
        "serviceId": text("author_serviceId"),
        "handle": text("author_handle"),
        "name": text("author_name"),
        "brandOwned": brand if isinstance(brand, bool) else bool(parts.get("author_brandOwned")),
    }
    return interaction
