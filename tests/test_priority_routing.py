"""Hybrid Chat's objects, built by pure functions from the mapping's `expertflow` section (the
service itself runs in test_expertflow.py and test_scenarios.py, over HTTP)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from conftest import ROOT

from gateway.errors import BadGateway
from gateway.mapping.codecs import PhoneNumbers
from gateway.mapping.priority_routing import (
    customer_labels,
    customer_object,
    label_entries,
    label_id,
    label_objects,
    not_found_object,
)
from gateway.mapping.spec import load_mapping

SPEC = load_mapping(ROOT / "mappings/zendesk.yaml").priority_routing
assert SPEC is not None
LABELS = SPEC.labels
PHONES = [f"phone{i}" for i in range(1, 6)]
KEYS = ["_id", "first_name", "last_name", "email", *PHONES, "labels", "created_by", "updated_by",
        "createdAt", "updatedAt", "__v"]  # fmt: skip
JANE = {
    "id": 1001,
    "name": "Jane van Doe",
    "email": "jane@example.com",
    "phone": "+41791234567",
    "identities": [
        {"type": "phone_number", "value": "+41 79 123 45 67"},  # the matched one, again
        {"type": "phone_number", "value": "+41 44 668 18 00"},
        {"type": "email", "value": "jane@example.com"},
    ],
    "created_at": "2024-01-02T03:04:05Z",
    "updated_at": "2024-02-03T04:05:06+01:00",
    "user_fields": {"vip_level": "gold"},
}


def test_a_customer_has_every_documented_key_and_each_number_once() -> None:
    made = customer_object(SPEC, JANE, "+41791234567", ["abc"], PhoneNumbers())
    assert list(made) == KEYS
    assert (made["_id"], made["first_name"], made["last_name"]) == ("1001", "Jane", "van Doe")
    assert [made[f"phone{i}"] for i in range(1, 6)] == [
        "+41791234567",
        "+41 44 668 18 00",
        "",
        "",
        "",
    ]
    # UTC with milliseconds, as Hybrid Chat's own objects carry them.
    assert (made["createdAt"], made["updatedAt"]) == (
        "2024-01-02T03:04:05.000Z",
        "2024-02-03T03:05:06.000Z",
    )
    assert made["labels"] == ["abc"] and made["__v"] == 0


def test_what_the_crm_lacks_is_empty_text() -> None:
    made = customer_object(SPEC, {"id": 7}, "+15550001111", [], PhoneNumbers())
    assert made["email"] == made["first_name"] == made["createdAt"] == ""
    assert not_found_object("+1999")["phone1"] == "+1999" and list(not_found_object("x")) == KEYS


def test_label_ids_are_stable_and_distinct() -> None:
    assert label_id("zendesk", "gold") == label_id("zendesk", "gold")
    assert label_id("zendesk", "gold") != label_id("rt5", "gold") != label_id("zendesk", "Gold")
    assert len(label_id("zendesk", "gold")) == 24 and int(label_id("zendesk", "gold"), 16) >= 0


def test_labels_from_the_upstream_answer() -> None:
    answer = {
        "user_fields": [
            {"key": "vip_level", "custom_field_options": [{"name": "Gold", "value": "gold"}]},
            {"key": "other", "custom_field_options": [{"name": "X", "value": "x"}]},
        ]
    }
    entries = label_entries(LABELS, answer)
    assert entries == [("gold", "Gold")]
    (gold,) = label_objects(LABELS, "zendesk", entries)
    assert gold["_id"] == label_id("zendesk", "gold") and gold["color_code"] == "#3cb44b"
    assert customer_labels(LABELS, JANE, {"gold"}) == ["gold"]
    assert customer_labels(LABELS, JANE, {"silver"}) == []  # only labels that exist


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"user_fields": [{"key": "vip_level", "custom_field_options": {"value": "gold"}}]},
        {"user_fields": [{"key": "vip_level", "custom_field_options": [{"name": "No key"}]}]},
    ],
)
def test_an_answer_of_another_shape_is_the_upstreams_error(answer: Any) -> None:
    with pytest.raises(BadGateway):
        label_entries(LABELS, answer)


def test_declared_labels_need_no_answer() -> None:
    declared = replace(LABELS, request=None, items=None, declared=(("vip", "Vip"),))
    assert label_entries(declared, None) == [("vip", "Vip")]
