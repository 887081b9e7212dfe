"""Text from outside: what is not text is found, and the CRM's text is repaired, whatever its
shape (property tests), without recursion."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import jsonio
from gateway.text import REPLACEMENT, is_text, may_need_repair, repaired, shown

# Any text, with lone surrogates and NUL often.
BROKEN = st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff", "\udcff", "\x00"])
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()) | BROKEN)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=30,
)  # fmt: skip
PROPERTIES = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def test_what_is_text() -> None:
    assert is_text("Ada \U0001f600") and not is_text("x\ud800y") and not is_text("\udcff")
    assert is_text("a\x00b")  # NUL is text; the CRM's NUL is still repaired (see below)
    assert shown("x\ud800y\x00") == f"x{REPLACEMENT}y{REPLACEMENT}"


@PROPERTIES
@given(JSON)
def test_any_upstream_json_reads_after_repair(value: Any) -> None:
    """As the CRM sends it (escaped JSON), parsed as the gateway parses it: after repair it
    encodes, and nothing needed a repair the cheap test missed."""
    text = json.dumps(value)
    parsed = json.loads(text)
    if may_need_repair(text):
        parsed = repaired(parsed)
    encoded = orjson.dumps(parsed)  # raises if a lone surrogate was left
    assert b"\\u0000" not in encoded


@PROPERTIES
@given(JSON)
def test_repair_keeps_what_is_text(value: Any) -> None:
    text = json.dumps(value)
    if "\\ud" not in text.lower() and "\\u0000" not in text:
        assert repaired(json.loads(text)) == json.loads(text)


def test_repair_goes_any_depth_without_recursion() -> None:
    deep: Any = "x\ud800"
    for _ in range(50_000):
        deep = [{"k\x00": deep}]
    fixed = repaired(deep)
    for _ in range(50_000):
        fixed = fixed[0]["k" + REPLACEMENT]
    assert fixed == "x" + REPLACEMENT


@PROPERTIES
@given(JSON)
def test_json_out_never_fails(value: Any) -> None:
    """Whatever reaches a response body or a log line, it is written (repaired if need be)."""
    out = jsonio.dumps({"value": value, "big": 2**80})
    assert is_text(out)
    json.loads(out)
