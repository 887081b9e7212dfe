"""The compiler's tools: what compiles is ready to run, what does not is refused at its line and
key, before anything is served."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gateway import yamlfile
from gateway.errors import ConfigError
from gateway.mapping.compiler import Compiler


def compiler(tmp_path: Path) -> Compiler:
    path = tmp_path / "m.yaml"
    path.write_text("a:\n  b: 1\n  c: 2\n")
    return Compiler(yamlfile.load(path))


def test_each_tool_compiles_what_it_is_given(tmp_path: Path) -> None:
    c = compiler(tmp_path)
    assert c.template("{{ x }}!", ("a", "b"))({"x": 1}) == "1!"
    assert c.jmespath("a.b", ("a", "b"))({"a": {"b": 7}}) == 7
    assert c.regex("^x", ("a", "b")).match("xy")
    request = c.request({"method": "GET", "path": "/u/{{ id }}", "query": {"q": "{{ id }}"}}, ())
    assert request.method == "GET" and request.path({"id": 5}) == "/u/5"
    assert request.query({"id": 5}) == {"q": 5}  # a lone expression keeps its type
    assert request.body is None and not request.idempotent


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda c: c.template("{{ x", ("a", "c")), "template"),
        (lambda c: c.jmespath("a[", ("a", "c")), "JMESPath"),
        (lambda c: c.regex("(", ("a", "c")), "not a regular expression"),
    ],
)
def test_what_does_not_compile_is_refused_at_its_key(
    tmp_path: Path, make: Callable[[Compiler], object], problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        make(compiler(tmp_path))
    assert str(err.value).startswith(f"{tmp_path / 'm.yaml'}:3: a.c: ")
    assert problem.lower() in str(err.value).lower()
