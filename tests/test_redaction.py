"""The redactor every log line passes last (tests/test_logs.py shows it on whole lines)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.redaction import PII_KEYS, Redactor


def redactor(*secrets: str, pii: bool = False) -> Redactor:
    made = Redactor()
    made.configure(secrets, pii=pii)
    return made


def test_the_longest_secret_is_replaced_whole_and_short_ones_are_ignored() -> None:
    r = redactor("abcd", "abcdef", "xy")  # "xy": too short to be told from text
    assert r.text("key abcdef and abcd, xy") == "key [secret] and [secret], xy"


def test_the_credentials_of_any_url_go_whatever_the_key() -> None:
    r = redactor(pii=True)
    assert r.value("route", "redis://:pw@h:6379/0") == "redis://[secret]@h:6379/0"
    assert r.value("detail", "see https://x.com/@jane") == "see https://x.com/@jane"


def test_pii_is_masked_by_key_and_by_pattern_except_in_our_own_values() -> None:
    r = redactor()
    assert all(r.value(key, "Jane") == "***" for key in PII_KEYS)
    assert r.value("detail", "jane@example.com or +41 79 123 45 67") == (
        "j***@example.com or ***67"
    )
    assert r.value("request_id", "00417912345678") == "00417912345678"  # structural: ours
    assert r.value("detail", "2026-11-26, ticket 5001") == "2026-11-26, ticket 5001"
    shown = redactor(pii=True)
    assert shown.value("email", "jane@example.com") == "jane@example.com"


def test_a_secret_added_later_reaches_values_redacted_before() -> None:
    r = redactor()
    assert r.event({"route": "/hooks/tok-123456789"}) == {"route": "/hooks/tok-123456789"}
    r.add("tok-123456789")
    assert r.event({"route": "/hooks/tok-123456789"}) == {"route": "/hooks/[secret]"}


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
keys = st.sampled_from(["event", "route", "detail", "email", "name", "request_id", "status"])


@given(st.dictionaries(keys, values, max_size=6), st.booleans())
def test_the_fast_path_for_a_line_redacts_as_each_value_would(
    event: dict[str, Any], pii: bool
) -> None:
    """`event` is inlined for speed; it must mean what `value` means, key by key."""
    r = redactor("s3cret-value", pii=pii)
    assert r.event(event) == {k: r.value(k, v) for k, v in event.items()}
    assert r.event(event) == {k: r.value(k, v) for k, v in event.items()}  # and from its memory
