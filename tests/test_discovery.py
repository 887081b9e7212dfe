"""Custom fields discovered from the upstream's definitions: each becomes a field as the
mapping's `custom_fields` says; an answer of another shape is the upstream's error."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conftest import ROOT

from gateway.errors import BadGateway
from gateway.mapping.discovery import discovered_field, discovered_fields, with_fields
from gateway.mapping.spec import load_mapping

ZENDESK = ROOT / "mappings/zendesk.yaml"
CASE = load_mapping(ZENDESK).objects["case"]
SPEC = CASE.custom_fields
assert SPEC is not None
TEXT = {"id": 8, "type": "text", "title": "Order", "active": True, "removable": True}


def test_discovered_field_renders_its_definition() -> None:
    raw = yaml.safe_load(ZENDESK.read_text())["objects"]["case"]["custom_fields"]
    spec = load_mapping(ZENDESK).objects["case"].custom_fields
    assert spec is not None and raw
    item = {
        "id": 7,
        "type": "tagger",
        "title": "Product",
        "active": True,
        "removable": True,
        "custom_field_options": [{"name": "Phone", "value": "p_phone"}],
    }
    f = discovered_field(spec, item)
    assert f is not None
    assert (f.name, f.type, f.options, f.error_key) == (
        "custom_7",
        "single_sel_list",
        (("Phone", "p_phone"),),
        "7",
    )
    assert f.read({"custom_fields": [{"id": 7, "value": "p_phone"}]}) == "p_phone"
    assert discovered_field(spec, {**item, "type": "multiselect"}) is None


def test_every_definition_a_field_once_and_skipped_when_taken() -> None:
    answer: dict[str, Any] = {
        "ticket_fields": [TEXT, {**TEXT, "id": 9}, {**TEXT, "title": "Again"}]
    }
    taken = {"custom_9"}
    found = discovered_fields(SPEC, answer, taken, "GET /ticket_fields")
    assert [f.name for f in found] == ["custom_8"]  # 9 was taken, 8 is made once
    assert taken == {"custom_8", "custom_9"}
    grown = with_fields(CASE, found)
    assert grown.fields[-1].name == "custom_8" and len(grown.fields) == len(CASE.fields) + 1


@pytest.mark.parametrize(
    "answer",
    [
        {},  # no list where `items` points
        {"ticket_fields": {"id": 1}},
        {"ticket_fields": [{"active": True, "removable": True, "title": "No type"}]},
    ],
)
def test_an_answer_of_another_shape_is_the_upstreams_error(answer: Any) -> None:
    """Not cached as "no custom fields": the engine keeps the last good definitions."""
    with pytest.raises(BadGateway) as err:
        discovered_fields(SPEC, answer, set(), "GET /ticket_fields")
    assert err.value.detail and err.value.detail.startswith("GET /ticket_fields: ")
