"""The registry of Khoros field types: the mapping schema, the check of what callers send, and
meta read it, so a new type is one entry there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from gateway.errors import BadRequest
from gateway.mapping import fields as fm
from gateway.mapping.codecs import Codecs
from gateway.mapping.field_types import FIELD_TYPES, FieldType, value_schema
from gateway.mapping.spec import load_mapping

ZENDESK = ROOT / "mappings/zendesk.yaml"


def test_each_type_accepts_its_values_and_clears_with_none() -> None:
    text, checkbox = FIELD_TYPES["text"], FIELD_TYPES["checkbox"]
    assert text.accepts("x") and not text.accepts(7) and not text.accepts(True)
    assert checkbox.accepts(True) and checkbox.accepts("FALSE") and not checkbox.accepts("maybe")
    assert [t.name for t in FIELD_TYPES.values() if t.options] == ["single_sel_list"]
    assert {"type": "string"} in value_schema()["anyOf"]


def test_a_new_type_is_one_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = ZENDESK.read_text()
    old = "      - name: notes\n        label: Notes\n        type: textarea\n"
    assert old in text
    path = tmp_path / "m.yaml"
    path.write_text(text.replace(old, old.replace("textarea", "rating"), 1))
    with pytest.raises(Exception, match="'rating' is not one of"):
        load_mapping(path)

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    rating = FieldType("rating", {"type": "integer"}, whole, "a whole number", options=False)
    monkeypatch.setitem(FIELD_TYPES, "rating", rating)
    customer = load_mapping(path).objects["customer"]
    notes = next(f for f in fm.meta_of(customer)["fields"] if f["name"] == "notes")
    assert notes["type"] == "rating" and "listValues" not in notes
    with pytest.raises(BadRequest) as err:
        fm.to_changes(customer.fields, {"notes": "five"}, codecs=Codecs())
    assert err.value.fields[0].message == "Must be a whole number."
    assert {"type": "integer"} in value_schema()["anyOf"]
