"""The field types of Khoros's meta (docs/behaviour.md §1.3), in one registry. The mapping
schema's names of types, the check of what a caller sends for a field (`fields.to_changes`, and
`fields.search_pairs` for a search: the same rules), meta's `listValues` and the value schema of
/openapi.json all read it: a new type is one entry here (and a mapping that uses it)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldType:
    name: str
    value: Mapping[str, Any]  # JSON schema of the values callers get and send
    accepts: Callable[[Any], bool]  # a caller's value for such a field (not None: it clears)
    wants: str  # what `accepts` wants, for the 400: "Must be <wants>."
    options: bool = False  # meta lists the field's options as `listValues`
    # An accepted value as a search looks for it (and re-checks results with): text.
    searched: Callable[[Any], str] = str.strip


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _true_or_false(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value.lower() in _BOOLEANS)


def _boolean_text(value: Any) -> str:
    return str(value).lower()  # True -> "true", as the CRMs' search and the codec read it


_BOOLEANS = ("true", "false")


_TEXT = {"type": "string"}

FIELD_TYPES: dict[str, FieldType] = {
    t.name: t
    for t in (
        FieldType("text", _TEXT, _text, "text"),
        FieldType("textarea", _TEXT, _text, "text"),
        FieldType("single_sel_list", _TEXT, _text, "text", options=True),
        FieldType(
            "checkbox",
            {"type": ["boolean", "string"]},
            _true_or_false,
            "true or false",
            searched=_boolean_text,
        ),
    )
}


def value_schema() -> dict[str, Any]:
    """The JSON schema of any field's value: one of the types' values."""
    distinct = {repr(t.value): dict(t.value) for t in FIELD_TYPES.values()}
    return {"anyOf": list(distinct.values())}
