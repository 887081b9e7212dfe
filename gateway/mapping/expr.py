"""The two expression languages of a mapping, compiled once at load.

- JMESPath reads values out of upstream JSON (``read``, ``record``, ``items``, ...).
- Jinja, in its immutable sandbox, builds values: a string with ``{{ }}`` is a template; a string
  that is a single ``{{ expr }}`` keeps the expression's type (a dict stays a dict); keys such as
  ``when`` and ``for_each`` are bare expressions. Templates cannot reach attributes that start
  with ``_``, files or the environment, and cannot mutate what they are given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import jinja2
import jmespath
import jmespath.exceptions
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gateway.errors import MappingFailed
from gateway.mapping import codecs, jmes


class ExprError(ValueError):
    """An expression that does not compile; the loader adds file, line and key."""


def _quote(value: Any) -> str:
    """A search value that cannot change the meaning of the query it is put in.

    Quotes, backslashes, wildcards and control characters become spaces, then the value is
    wrapped in double quotes, where ``type:``, a leading ``-`` and ``:`` are plain text. Results
    are re-checked against the record anyway, so a value changed here can only match less.
    """
    text = re.sub(r'["\\*\x00-\x1f\x7f]', " ", str(value if value is not None else ""))
    return '"' + " ".join(text.split()) + '"'


def _without(value: Any, *keys: str) -> Any:
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if k not in keys}
    return value


# A missing key in upstream data reads as nothing (as in JMESPath), however deep the path.
_env = ImmutableSandboxedEnvironment(
    autoescape=False, keep_trailing_newline=False, undefined=jinja2.ChainableUndefined
)
_env.filters.update(quote=_quote, without=_without, digits=codecs.digits)
# Nothing to reach beyond the context: no globals but dict, no filter that reads attributes.
_env.globals = {"dict": dict}
del _env.filters["attr"]
_FILE_NODES = (
    jinja2.nodes.Include,
    jinja2.nodes.Import,
    jinja2.nodes.FromImport,
    jinja2.nodes.Extends,
)


def _refuse_unsafe(source: str) -> None:
    """Refuse at load what the sandbox would only stop at run time: private attributes, the
    template itself, and anything that reads files."""
    try:
        tree = _env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise ExprError(f"template does not compile: {exc.message}") from None
    for node in tree.find_all(jinja2.nodes.Node):
        if isinstance(node, _FILE_NODES):
            raise ExprError("templates may not include, import or extend other files")
        if isinstance(node, jinja2.nodes.Getattr) and node.attr.startswith("_"):
            raise ExprError(f"templates may not reach the attribute '{node.attr}'")
        if (
            isinstance(node, jinja2.nodes.Getitem)
            and isinstance(node.arg, jinja2.nodes.Const)
            and str(node.arg.value).startswith("_")
        ):
            raise ExprError(f"templates may not reach the key '{node.arg.value}'")
        if isinstance(node, jinja2.nodes.Name) and node.name in ("self", "loop", "caller"):
            raise ExprError(f"templates may not use '{node.name}'")
        if (
            isinstance(node, jinja2.nodes.Call)
            and isinstance(node.node, jinja2.nodes.Name)
            and node.node.name not in _env.globals
        ):
            raise ExprError(f"templates may call only dict() and methods, not {node.node.name}()")


_WHOLE = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.S)


def _plain(value: Any) -> Any:
    """Jinja's undefined becomes None, at any depth, so the value can be sent as JSON."""
    if isinstance(value, jinja2.Undefined):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Unsure(Exception):
    """A read the fast path leaves to Jinja (an attribute of an object, a key that is also a
    method of dict)."""


_MISSING = object()  # what Jinja reads as undefined
_DICT_ATTRIBUTES = frozenset(dir(dict))
Getter = Callable[[Mapping[str, Any]], Any]


def _getter(node: jinja2.nodes.Node) -> Getter | None:
    """For `name`, `a.b` and `a["b"]` over plain dicts: a function of the context giving what
    the sandbox gives (`_MISSING` for undefined, which chains), or raising _Unsure where only
    Jinja knows. None: another kind of expression."""
    steps: list[tuple[bool, str]] = []  # (an attribute, not an item; its name)
    while not isinstance(node, jinja2.nodes.Name):
        if isinstance(node, jinja2.nodes.Getattr):
            steps.append((True, node.attr))
        elif (
            isinstance(node, jinja2.nodes.Getitem)
            and isinstance(node.arg, jinja2.nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            steps.append((False, node.arg.value))
        else:
            return None
        node = node.node
    name = node.name
    if name in _env.globals:
        return None
    steps.reverse()

    def get(ctx: Mapping[str, Any]) -> Any:
        value = ctx.get(name, _MISSING)
        for attribute, key in steps:
            if value is _MISSING:
                return value
            if type(value) is not dict:
                raise _Unsure
            # The sandbox tries an attribute before a key for `a.b`, a key first for `a["b"]`.
            if key in value and not (attribute and key in _DICT_ATTRIBUTES):
                value = value[key]
            elif key in _DICT_ATTRIBUTES:
                raise _Unsure
            else:
                value = _MISSING
        return value

    return get


# The mapping's own filters, each a plain function of one value (Jinja's own, with their
# arguments and their handling of undefined values, are left to Jinja).
_OWN_FILTERS = ("quote", "digits")


def _filtered(node: jinja2.nodes.Node) -> Getter | None:
    """`_getter`, or a read passed through the mapping's own filters (``value | quote``): an
    undefined value is left to Jinja."""
    if not isinstance(node, jinja2.nodes.Filter):
        return _getter(node)
    plain = not (node.args or node.kwargs or node.dyn_args or node.dyn_kwargs)
    inner = _filtered(node.node) if plain and node.node is not None else None
    if inner is None or node.name not in _OWN_FILTERS:
        return None
    apply = _env.filters[node.name]

    def get(ctx: Mapping[str, Any]) -> Any:
        value = inner(ctx)
        if value is _MISSING:
            raise _Unsure
        return apply(value)

    return get


def _fast(source: str, whole: bool) -> Getter | None:
    """A template of text and plain reads (``/users/{{ id }}``, ``{{ record.id }}``) as a
    function that does what Jinja would, without a Jinja context a call; None for any other."""
    output = _env.parse(source).body
    if len(output) != 1 or not isinstance(output[0], jinja2.nodes.Output):
        return None
    parts: list[str | Getter] = []
    for node in output[0].nodes:
        if isinstance(node, jinja2.nodes.TemplateData):
            parts.append(node.data)
        elif (read := _filtered(node)) is not None:
            parts.append(read)
        else:
            return None
    if whole:
        if len(parts) != 1 or isinstance(parts[0], str):
            return None
        read = parts[0]
        return lambda ctx: None if (value := read(ctx)) is _MISSING else _plain(value)

    def render(ctx: Mapping[str, Any]) -> str:
        out = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            elif (value := part(ctx)) is not _MISSING:
                out.append(str(value))
        return "".join(out)

    return render


class Template:
    """A compiled string: constant, template, or single expression keeping its type. Plain
    reads are done without Jinja (`_fast`), which then only answers what they leave to it."""

    __slots__ = ("_fast", "_fn", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._fn: Callable[[Mapping[str, Any]], Any]
        self._fast: Getter | None = None
        _refuse_unsafe(source)
        try:
            whole = _WHOLE.match(source)
            if whole and "{{" not in whole.group(1) and "{%" not in source:
                expr = _env.compile_expression(whole.group(1), undefined_to_none=True)
                self._fn = lambda ctx: _plain(expr(**ctx))
                self._fast = _fast("{{" + whole.group(1) + "}}", whole=True)
            elif "{{" in source or "{%" in source:
                tmpl = _env.from_string(source)
                self._fn = lambda ctx: tmpl.render(**ctx)
                self._fast = _fast(source, whole=False)
            else:
                self._fn = lambda ctx: source
        except jinja2.TemplateSyntaxError as exc:
            raise ExprError(f"template does not compile: {exc.message}") from None

    def __call__(self, ctx: Mapping[str, Any]) -> Any:
        if self._fast is not None:
            try:
                return self._fast(ctx)
            except _Unsure:
                pass
        try:
            return self._fn(ctx)
        except jinja2.TemplateError as exc:
            raise MappingFailed(detail=f"template {self.source[:80]!r}: {exc}") from None


class Expression:
    """A bare Jinja expression (``when``, ``for_each``, ``values``)."""

    __slots__ = ("_fn", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        _refuse_unsafe("{{ " + source + " }}")
        try:
            self._fn = _env.compile_expression(source, undefined_to_none=True)
        except jinja2.TemplateSyntaxError as exc:
            raise ExprError(f"expression does not compile: {exc.message}") from None

    def __call__(self, ctx: Mapping[str, Any]) -> Any:
        try:
            return _plain(self._fn(**ctx))
        except jinja2.TemplateError as exc:
            raise MappingFailed(detail=f"expression {self.source[:80]!r}: {exc}") from None


# `a.b."c d"`: the common case, read without the JMESPath interpreter (same meaning).
_PLAIN = re.compile(
    r'^(?:[A-Za-z_][A-Za-z0-9_]*|"[^"\\]*")(?:\.(?:[A-Za-z_][A-Za-z0-9_]*|"[^"\\]*"))*$'
)
_SEGMENT = re.compile(r'[A-Za-z_][A-Za-z0-9_]*|"([^"\\]*)"')


def _plain_reader(keys: tuple[str, ...]) -> Callable[[Any], Any]:
    """A plain path's read: each key of a dict in turn; anything else reads as nothing."""
    if len(keys) == 1:
        (key,) = keys
        return lambda data: data.get(key) if isinstance(data, dict) else None

    def read(data: Any) -> Any:
        for key in keys:
            if not isinstance(data, dict):
                return None
            data = data.get(key)
        return data

    return read


def _guarded(read: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def guarded(data: Any) -> Any:
        try:
            return read(data)
        except jmespath.exceptions.JMESPathError:
            # A type error on unexpected upstream data reads as "no value", never as a crash.
            return None

    return guarded


class Path:
    """A compiled JMESPath expression. Plain field paths are read directly (they are most of a
    mapping's reads, and the interpreter costs more than the rest of a request); the others
    through closures (gateway.mapping.jmes). ``get`` is the read itself, for callers that
    read many."""

    __slots__ = ("get", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            expr = jmespath.compile(source)
        except jmespath.exceptions.JMESPathError as exc:
            raise ExprError(f"JMESPath does not compile: {exc}") from None
        self.get: Callable[[Any], Any]
        if _PLAIN.match(source.strip()):
            keys = tuple(
                m.group(1) if m.group(1) is not None else m.group(0)
                for m in _SEGMENT.finditer(source)
            )
            self.get = _plain_reader(keys)
        else:
            self.get = _guarded(jmes.compile_node(expr.parsed))

    def __call__(self, data: Any) -> Any:
        return self.get(data)


def compile_tree(value: Any) -> Callable[[Mapping[str, Any]], Any]:
    """Compile a YAML structure whose strings are templates into a function of the context."""
    if isinstance(value, dict):
        parts = {str(k): compile_tree(v) for k, v in value.items()}
        return lambda ctx: {k: fn(ctx) for k, fn in parts.items()}
    if isinstance(value, list):
        items = [compile_tree(v) for v in value]
        return lambda ctx: [fn(ctx) for fn in items]
    if isinstance(value, str):
        return Template(value)
    return lambda ctx: value
