"""A mapping's `expertflow` section compiles, or fails at its file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

from gateway import yamlfile
from gateway.errors import ConfigError
from gateway.mapping.compiler import Compiler
from gateway.mapping.routing_spec import label_source, priority_routing

CUSTOMER_FIELDS = {"name", "email", "phone"}


def section(tmp_path: Path, expertflow: dict[str, Any]) -> tuple[Compiler, Any]:
    """A compiler over a file holding only this `expertflow` section, and the section."""
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump({"expertflow": expertflow}, sort_keys=False))
    doc = yamlfile.load(path)
    return Compiler(doc), doc.data["expertflow"]


def test_the_shipped_section_compiles() -> None:
    doc = yamlfile.load(ROOT / "mappings/zendesk.yaml")
    spec = priority_routing(Compiler(doc), doc.data["expertflow"], CUSTOMER_FIELDS)
    assert spec.phone_field == "phone" and spec.phones is not None
    assert set(spec.customer) == {"first_name", "last_name", "email", "createdAt", "updatedAt"}
    assert spec.customer["first_name"]({"record": {"name": "Jane Doe"}}) == "Jane"
    labels = spec.labels
    assert labels.request is not None and labels.declared == ()
    assert labels.default_color == "#7c87ce" and labels.colors["gold"] == "#3cb44b"


def test_declared_labels_are_named_by_their_key_unless_named(tmp_path: Path) -> None:
    given = {"declared": [{"key": "vip"}, {"key": "vvip", "name": "Very"}], "of_customer": "tags"}
    c, raw = section(tmp_path, {"phone_field": "phone", "labels": given})
    labels = priority_routing(c, raw, CUSTOMER_FIELDS).labels
    assert labels.declared == (("vip", "vip"), ("vvip", "Very"))
    assert labels.request is None and labels.items is None
    assert labels.default_color == "#a9a9a9"  # the default when the section sets none


@pytest.mark.parametrize(
    ("expertflow", "key", "problem"),
    [
        (
            {"phone_field": "mobile", "labels": {"declared": [], "of_customer": "tags"}},
            "expertflow.phone_field",
            "no customer field named 'mobile'",
        ),
        (
            {
                "phone_field": "phone",
                "labels": {
                    "declared": [{"key": "vip"}],
                    "request": {"method": "GET", "path": "/labels"},
                    "of_customer": "tags",
                },
            },
            "expertflow.labels",
            "give either `request` and `items`, or `declared`",
        ),
        (
            {
                "phone_field": "phone",
                "labels": {"request": {"method": "GET", "path": "/x"}, "of_customer": "t"},
            },
            "expertflow.labels.items",
            "labels read from a request need `items`",
        ),
        (
            {
                "phone_field": "phone",
                "updated": "[[",
                "labels": {"declared": [], "of_customer": "t"},
            },
            "expertflow.updated",
            "",
        ),
    ],
)
def test_a_broken_section_is_refused_at_its_key(
    tmp_path: Path, expertflow: dict[str, Any], key: str, problem: str
) -> None:
    c, raw = section(tmp_path, expertflow)
    with pytest.raises(ConfigError) as caught:
        priority_routing(c, raw, CUSTOMER_FIELDS)
    assert caught.value.key == key and problem in caught.value.problem
    assert caught.value.line is not None and caught.value.file.endswith("m.yaml")


def test_label_source_reports_under_the_path_it_is_given(tmp_path: Path) -> None:
    c, raw = section(tmp_path, {"labels": {"of_customer": "tags"}})
    with pytest.raises(ConfigError) as caught:
        label_source(c, raw["labels"], ("expertflow", "labels"))
    assert caught.value.key == "expertflow.labels"
