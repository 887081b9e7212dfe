"""Field maps as properties: whatever JSON a caller sends for any field, the result is upstream
changes or a clean 400/422, never anything else."""

from __future__ import annotations

from typing import Any

from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import BadRequest, ValidationFailed
from gateway.mapping import fields as fm
from gateway.mapping.codecs import Codecs, PhoneNumbers
from gateway.mapping.model import ListWrite
from gateway.mapping.spec import load_mapping

CUSTOMER = load_mapping(ROOT / "mappings/zendesk.yaml").objects["customer"].fields
NAMES = [f.name for f in CUSTOMER]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def top(write: str | ListWrite) -> str:
    """The top-level key of the upstream changes a write goes to."""
    return write.list if isinstance(write, ListWrite) else write.split(".")[0]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*NAMES, "unknown", "id"]), JSON, max_size=5))
def test_any_body_maps_or_fails_cleanly(body: dict[str, Any]) -> None:
    try:
        changes = fm.to_changes(CUSTOMER, body, codecs=Codecs(PhoneNumbers("CH")))
    except (BadRequest, ValidationFailed) as exc:
        assert exc.fields and {f.name for f in exc.fields} <= set(body)
    else:
        # Only writable fields pass, and they change only the places they write to.
        assert set(body) <= {f.name for f in CUSTOMER if f.write is not None}
        given = [f for f in CUSTOMER if f.name in body]
        places = {top(w) for f in given for w in (f.write, f.extension) if w is not None}
        assert set(changes) <= places


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([*NAMES, "notes"]), JSON, max_size=4))
def test_any_search_body_is_pairs_or_a_400(body: dict[str, Any]) -> None:
    try:
        pairs = fm.search_pairs(CUSTOMER, body)
    except BadRequest:
        return
    assert pairs and all(f.searchable and value.strip() for f, value in pairs)
