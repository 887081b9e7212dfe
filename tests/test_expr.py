"""The expression layer: sandboxed templates refused at load when unsafe; the `quote` filter and
phone digits as properties over any input (hypothesis)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.mapping.codecs import digits
from gateway.mapping.expr import ExprError, Expression, Template, _quote
from gateway.mapping.spec import load_mapping


@pytest.mark.parametrize(
    "source",
    [
        "{{ record.__class__ }}",
        "{{ record.__class__.__mro__[1].__subclasses__() }}",
        '{{ record["__globals__"] }}',
        '{% include "/etc/passwd" %}',
        '{% import "x" as y %}',
        "{{ self }}",
        "{{ lipsum() }}",
        "{{ range(10) }}",
        '{{ body | attr("__class__") }}',
    ],
)
def test_unsafe_templates_are_refused(source: str) -> None:
    with pytest.raises(ExprError):
        Template(source)


def test_unsafe_expression_is_refused_and_safe_ones_work() -> None:
    with pytest.raises(ExprError):
        Expression("body.__class__")
    assert Expression("dict(a=1, b=value)")({"value": 2}) == {"a": 1, "b": 2}
    assert Template("{{ name.split(' ', 1)[0] }}")({"name": "Jane Doe"}) == "Jane"
    assert Template("{{ steps.a.b.c }}")({"steps": {}}) is None  # missing reads as nothing


def test_an_unsafe_mapping_template_stops_start_up_with_file_line_key(tmp_path: Path) -> None:
    text = (ROOT / "mappings/zendesk.yaml").read_text()
    bad = text.replace(
        'url: "{{ upstream_url }}/agent/users/{{ record.id }}"', 'url: "{{ record.__class__ }}"', 1
    )
    path = tmp_path / "m.yaml"
    path.write_text(bad)
    with pytest.raises(ConfigError) as err:
        load_mapping(path)
    line = next(i for i, t in enumerate(bad.splitlines(), 1) if "__class__" in t)
    assert str(err.value).startswith(f"{path}:{line}: objects.customer.url: templates may not")


@given(st.text())
def test_quote_makes_one_inert_phrase(value: str) -> None:
    quoted = _quote(value)
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    assert not re.search(r'["\\*\x00-\x1f\x7f]', inner)  # nothing that ends or widens it
    assert inner == inner.strip() and "  " not in inner


@given(
    st.text(
        alphabet=st.characters(whitelist_categories=("Nd", "Zs", "Pd", "Ps", "Pe"))
        | st.sampled_from("+0123456789 -()")
    )
)
def test_digits_keep_only_the_number(value: str) -> None:
    out = digits(value)
    assert out == "" or out.isdigit()
    assert digits("+" + out) == out and digits("00" + out) == out if out else True


FAST_SOURCES = [
    "/api/v2/users/{{ id }}",
    "{{ upstream_url }}/agent/users/{{ record.id }}",
    "{{ method }} {{ path }}",
    '{{ a["b"] }}',
    "{{ a.items }}",
    '{{ a["items"] }}',
    "{{ a.b.c }}",
    "x{{ a.b.c }}y",
    "{{ record }}",
    " {{ record.id }} ",
    "{{ n }}",
    "{{ t }}",
    "p{{ t }}",
    "{{ s.x }}",
    "{{- id }} z\n",
    "name:{{ a.b | quote }}",
    "phone:{{ s | digits | quote }}",
    "{{ n | quote }}",
    "{{ id | digits }}",
]
CONTEXTS: list[dict[str, Any]] = [
    {},
    {
        "id": 7,
        "upstream_url": "http://u",
        "record": {"id": 3, "x": None},
        "method": "GET",
        "path": "/p",
        "a": {"b": {"c": [1]}, "items": 5},
        "n": None,
        "t": (1, (2, 3)),
        "s": "text",
    },
    {"id": None, "record": {"id": {"k": (1,)}}, "a": {"b": 1}, "s": {"x": 1}},
    {"record": [1], "a": {"b": {"c": None}}},
]


@pytest.mark.parametrize("source", FAST_SOURCES)
def test_plain_templates_render_as_jinja_renders_them(source: str) -> None:
    """Text and plain reads are rendered without Jinja: the same value, of the same type, as
    Jinja's sandbox gives, undefined and non-dict values included."""
    template = Template(source)
    assert template._fast is not None
    for ctx in CONTEXTS:
        want = template._fn(ctx)
        got = template(ctx)
        assert (got, type(got)) == (want, type(want)), ctx
