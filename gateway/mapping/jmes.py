"""JMESPath compiled to plain Python functions, once at load: one closure a node of the parsed
expression, doing what jmespath's own interpreter (`TreeInterpreter`) does for that node,
without its dispatch by node type on every read. Nodes without a closure here (functions,
slices, ordering comparisons) are handed to the interpreter, so every expression means exactly
what JMESPath says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jmespath.visitor import Options, TreeInterpreter

Read = Callable[[Any], Any]
Node = Any  # a parsed node: {"type": ..., "children": [...], "value": ...}
_EQ, _NE = TreeInterpreter.COMPARATOR_FUNC["eq"], TreeInterpreter.COMPARATOR_FUNC["ne"]


def _is_false(value: Any) -> bool:
    """JMESPath's falsiness (TreeInterpreter._is_false): 0 is true."""
    return value == "" or value == [] or value == {} or value is None or value is False


def compile_node(node: Node, interpreter: TreeInterpreter | None = None) -> Read:
    """A function of the data for the parsed expression ``node``."""
    interpreter = interpreter or TreeInterpreter(Options())
    build = _BUILDERS.get(node["type"])
    if build is None:
        return lambda value: interpreter.visit(node, value)
    return build(node, interpreter)


def _children(node: Node, interpreter: TreeInterpreter) -> list[Read]:
    return [compile_node(child, interpreter) for child in node["children"]]


def _field(node: Node, interpreter: TreeInterpreter) -> Read:
    key = node["value"]

    def field(value: Any) -> Any:
        if type(value) is dict:
            return value.get(key)
        try:
            return value.get(key)
        except AttributeError:
            return None

    return field


def _chain(node: Node, interpreter: TreeInterpreter) -> Read:
    """subexpression, index_expression and pipe: each child reads what the last one gave."""
    steps = _children(node, interpreter)
    if len(steps) == 2:
        first, second = steps
        return lambda value: second(first(value))

    def chain(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return chain


def _index(node: Node, interpreter: TreeInterpreter) -> Read:
    at = node["value"]

    def index(value: Any) -> Any:
        if not isinstance(value, list):
            return None
        try:
            return value[at]
        except IndexError:
            return None

    return index


def _identity(node: Node, interpreter: TreeInterpreter) -> Read:
    return lambda value: value


def _literal(node: Node, interpreter: TreeInterpreter) -> Read:
    constant = node["value"]
    return lambda value: constant


def _projection(node: Node, interpreter: TreeInterpreter) -> Read:
    base, each = _children(node, interpreter)

    def projection(value: Any) -> Any:
        items = base(value)
        if not isinstance(items, list):
            return None
        return [x for x in map(each, items) if x is not None]

    return projection


def _value_projection(node: Node, interpreter: TreeInterpreter) -> Read:
    base, each = _children(node, interpreter)

    def value_projection(value: Any) -> Any:
        found = base(value)
        try:
            items = found.values()
        except AttributeError:
            return None
        return [x for x in map(each, items) if x is not None]

    return value_projection


def _flatten(node: Node, interpreter: TreeInterpreter) -> Read:
    (base,) = _children(node, interpreter)

    def flatten(value: Any) -> Any:
        items = base(value)
        if not isinstance(items, list):
            return None
        merged: list[Any] = []
        for item in items:
            if isinstance(item, list):
                merged.extend(item)
            else:
                merged.append(item)
        return merged

    return flatten


def _filter_projection(node: Node, interpreter: TreeInterpreter) -> Read:
    base, each, condition = _children(node, interpreter)

    def filter_projection(value: Any) -> Any:
        items = base(value)
        if not isinstance(items, list):
            return None
        out = []
        for item in items:
            if not _is_false(condition(item)):
                got = each(item)
                if got is not None:
                    out.append(got)
        return out

    return filter_projection


def _comparator(node: Node, interpreter: TreeInterpreter) -> Read:
    if node["value"] not in ("eq", "ne"):  # ordering: numbers and strings only, as it says
        return lambda value: interpreter.visit(node, value)
    left, right = _children(node, interpreter)
    compare = _EQ if node["value"] == "eq" else _NE
    return lambda value: compare(left(value), right(value))


def _or(node: Node, interpreter: TreeInterpreter) -> Read:
    left, right = _children(node, interpreter)

    def either(value: Any) -> Any:
        matched = left(value)
        return right(value) if _is_false(matched) else matched

    return either


def _and(node: Node, interpreter: TreeInterpreter) -> Read:
    left, right = _children(node, interpreter)

    def both(value: Any) -> Any:
        matched = left(value)
        return matched if _is_false(matched) else right(value)

    return both


def _multi_select_dict(node: Node, interpreter: TreeInterpreter) -> Read:
    pairs = [
        (pair["value"], compile_node(pair["children"][0], interpreter)) for pair in node["children"]
    ]

    def multi_select_dict(value: Any) -> Any:
        if value is None:
            return None
        return {key: read(value) for key, read in pairs}

    return multi_select_dict


def _multi_select_list(node: Node, interpreter: TreeInterpreter) -> Read:
    items = _children(node, interpreter)

    def multi_select_list(value: Any) -> Any:
        if value is None:
            return None
        return [read(value) for read in items]

    return multi_select_list


_BUILDERS: dict[str, Callable[[Node, TreeInterpreter], Read]] = {
    "field": _field,
    "subexpression": _chain,
    "index_expression": _chain,
    "pipe": _chain,
    "index": _index,
    "identity": _identity,
    "current": _identity,
    "literal": _literal,
    "projection": _projection,
    "value_projection": _value_projection,
    "flatten": _flatten,
    "filter_projection": _filter_projection,
    "comparator": _comparator,
    "or_expression": _or,
    "and_expression": _and,
    "multi_select_dict": _multi_select_dict,
    "multi_select_list": _multi_select_list,
}
