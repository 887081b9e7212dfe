"""The compiler's tools, bound to one mapping file: each compiles an expression, a template, a
pattern or a request at load, and reports a problem at its file, line and key. The sections of
a mapping are compiled with them in `gateway.mapping.spec`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gateway.mapping.expr import ExprError, Expression, Path, Template, compile_tree
from gateway.mapping.model import Request, Tree
from gateway.yamlfile import PathKey, YamlDoc


class Compiler:
    """Compiles the parts of one YamlDoc; every compile error is reported at its key."""

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc

    def _at(self, path: PathKey, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except ExprError as exc:
            raise self.doc.error(path, str(exc)) from None

    def template(self, value: str, path: PathKey) -> Template:
        return self._at(path, lambda: Template(value))  # type: ignore[no-any-return]

    def expression(self, value: str, path: PathKey) -> Expression:
        return self._at(path, lambda: Expression(value))  # type: ignore[no-any-return]

    def jmespath(self, value: str, path: PathKey) -> Path:
        return self._at(path, lambda: Path(value))  # type: ignore[no-any-return]

    def regex(self, value: str, path: PathKey) -> re.Pattern[str]:
        try:
            return re.compile(value)
        except re.error as exc:
            raise self.doc.error(path, f"not a regular expression: {exc}") from None

    def tree(self, value: Any, path: PathKey) -> Tree:
        return self._at(path, lambda: compile_tree(value))  # type: ignore[no-any-return]

    def request(self, raw: Mapping[str, Any], path: PathKey) -> Request:
        body = raw.get("body")
        return Request(
            method=raw["method"],
            path=self.template(raw["path"], (*path, "path")),
            query=self.tree(raw.get("query", {}), (*path, "query")),
            headers=self.tree(raw.get("headers", {}), (*path, "headers")),
            body=None if body is None else self.tree(body, (*path, "body")),
            idempotent=bool(raw.get("idempotent", False)),
        )
