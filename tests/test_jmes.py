"""JMESPath compiled to closures reads what jmespath's own interpreter reads: the same value of
the same type, for every expression of the shipped mappings and for each kind of node, over
data of every JSON shape (hypothesis)."""

from __future__ import annotations

import re
from typing import Any

import jmespath
import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mapping.jmes import compile_node

DATA: dict[str, Any] = {
    "steps": {
        "user": {
            "user": {"id": 1, "organization_id": 5, "name": "x", "user_fields": {"a": 1}},
            "identities": [
                {"user_id": 1, "type": "twitter", "value": "@j"},
                {"user_id": 1, "type": "email", "value": "j@x"},
            ],
            "organizations": [{"id": 5, "name": "Org"}],
        }
    },
    "n": [0, 1, True, False, None, "", [], {}, 2.5, "0"],
    "users": [{"id": 1, "active": True}, {"id": 2, "active": False}, {"id": 3}],
    "headers": {"x-rate-limit-remaining": "3"},
    "error": {"title": "", "message": "m"},
    "errors": [{"code": 1}],
}
EXPRESSIONS = [
    "steps.*[].identities[] | []",
    "steps.user.identities[?type=='twitter'].value | [0]",
    "steps.user.user",
    "n[?@ == `0`]",
    "n[?@ == `false`]",
    "n[?@ != `1`]",
    "n[?@]",
    "users[?active].id",
    "users[?!active].id",
    "users[].{i: id, a: active}",
    "users[].[id, active]",
    "users[?id > `1`].id",
    "n[0] || n[3] || 'z'",
    "n[1] && n[5]",
    "!n[0]",
    "length(users)",
    "users[1:]",
    "n[-1]",
    "n[20]",
    "*.user",
    "steps.*.user.id",
    "users[*].id",
    "n[]",
    "n[][]",
    'to_number(headers."x-rate-limit-remaining") > `0`',
    "error.title || error.message || errors[0].code",
    "@",
    '`{"a": 1}`',
]
SAMPLES: list[Any] = [DATA, None, [], "text", 5, {"users": "no list"}, {"n": {"0": 1}}]


def _same(expression: str, data: Any) -> None:
    parsed = jmespath.compile(expression)
    try:
        want: Any = parsed.search(data)
    except jmespath.exceptions.JMESPathError as exc:
        want = type(exc)
    try:
        got: Any = compile_node(parsed.parsed)(data)
    except jmespath.exceptions.JMESPathError as exc:
        got = type(exc)
    assert (got, type(got)) == (want, type(want)), expression


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_each_kind_of_node_reads_as_the_interpreter_reads(expression: str) -> None:
    for data in SAMPLES:
        _same(expression, data)


def _mapping_paths() -> list[str]:
    """The JMESPath expressions of the shipped mappings (the values of their reading keys)."""
    keys = r"(?:read|from|items|result|record|records|type|message|details|narrow|options)"
    found = set()
    for path in (ROOT / "mappings").glob("*.yaml"):
        for m in re.finditer(rf"\b{keys}: *(\"[^\"]*\"|'[^']*')", path.read_text()):
            text = m.group(1)[1:-1]
            if "{{" not in text:
                found.add(text)
    return sorted(found)


@pytest.mark.parametrize("expression", _mapping_paths())
def test_the_shipped_mappings_read_as_the_interpreter_reads(expression: str) -> None:
    try:
        jmespath.compile(expression)
    except jmespath.exceptions.JMESPathError:
        pytest.skip("not a JMESPath expression")
    for data in SAMPLES:
        _same(expression, data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from(["", "a", "twitter"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "type", "value", "b"]), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(data=JSON, expression=st.sampled_from([*EXPRESSIONS, "a[?type=='twitter'].value | [0]"]))
def test_any_data_reads_as_the_interpreter_reads(data: Any, expression: str) -> None:
    _same(expression, data)
