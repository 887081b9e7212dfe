"""Load YAML with the line of every key, expand ``${VAR}`` from the environment, and validate
against a JSON schema, so every problem can be reported as ``file:line: key: what is wrong``.

A file is parsed once, and refused before its values are made when it could cost more than a
config may: over 1 MB, nested deeper than the parser goes, or holding more than `MAX_VALUES`
values once its aliases are expanded (a "billion laughs" of a few lines is 10**9 of them). The
count is taken on the composed nodes, each node once, so it is linear in the file, bomb or not;
the values are then constructed from those nodes."""

from __future__ import annotations

import copy
import difflib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from gateway.errors import ConfigError

PathKey = tuple[str | int, ...]
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_FILE = re.compile(r"\$\{file:([^}]+)\}")  # a secret file (Docker / Kubernetes secrets)
_QUOTED = re.compile(r"'[^']{3,}'|\"[^\"]{3,}\"")  # more than a character ('\t') in quotes
# Far above any config or mapping (the shipped mappings: 19 KB, about 1,100 values), far below
# harm: walking, validating and expanding the values of a file is linear in their number.
MAX_FILE_BYTES = 1024 * 1024
MAX_VALUES = 100_000


@dataclass(frozen=True)
class YamlDoc:
    """A parsed file: its data and where each key stands in it."""

    file: str
    data: Any
    lines: dict[PathKey, int]
    # Where a value came from the environment or a secret file: never shown in a message.
    expanded: frozenset[PathKey] = frozenset()

    def line(self, path: PathKey) -> int | None:
        # Walk up until a key with a known line: a list item's scalar has none of its own.
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path)

    def error(self, path: PathKey, problem: str) -> ConfigError:
        return ConfigError(self.file, self.line(path), dotted(path), problem)


def dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load(path: str | Path, *, env: Mapping[str, str] | None = None) -> YamlDoc:
    file = str(path)
    try:
        text = read_text(Path(path))
    except _NotText as exc:
        raise ConfigError(file, exc.line, "", str(exc)) from None
    except (_TooLarge, _NotAFile) as exc:
        raise ConfigError(file, None, "", f"the file {exc}") from None
    except OSError as exc:
        raise ConfigError(file, None, "", f"cannot read the file: {exc.strerror}") from None
    lines: dict[PathKey, int] = {}
    data = _parse(file, text, lines)
    doc = YamlDoc(file, data, lines)
    expanded: set[PathKey] = set()
    data = _expand(doc, data, (), os.environ if env is None else env, expanded)
    return YamlDoc(file, data, lines, frozenset(expanded))


def _parse(file: str, text: str, lines: dict[PathKey, int]) -> Any:
    """The file's values, parsed once; ``lines`` gets the line of every key."""
    try:
        loader = yaml.SafeLoader(text)  # checks every character first
    except yaml.reader.ReaderError as exc:
        at = text.count("\n", 0, max(exc.position, 0)) + 1
        problem = f"not valid YAML: a control character (#x{exc.character:x}) is not allowed"
        raise ConfigError(file, at, "", problem) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _count(file, node, (), {}, set())
        _record_lines(node, (), lines)  # before constructing: a merge (`<<`) rewrites nodes
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        # `problem` only: the error's text quotes the offending lines, which may hold secrets,
        # and a name it quotes (an alias, a tag) may be one too.
        problem = _QUOTED.sub("'…'", getattr(exc, "problem", None) or "the file cannot be parsed")
        raise ConfigError(file, line, "", f"not valid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(file, None, "", "nested too deeply: not loaded") from None
    finally:
        loader.dispose()


def _count(
    file: str, node: yaml.Node, path: PathKey, counted: dict[int, int], open_: set[int]
) -> int:
    """The values under ``node`` with every alias expanded, each node counted once (an alias
    is the node it names); refused past `MAX_VALUES`, at the first (so smallest) node past it,
    and when a node holds itself."""
    if id(node) in counted:
        return counted[id(node)]
    if id(node) in open_:
        raise ConfigError(
            file, node.start_mark.line + 1, dotted(path), "contains itself through an alias: "
            "not loaded"
        )  # fmt: skip
    open_.add(id(node))
    total = 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            total += _count(file, key_node, path, counted, open_)
            total += _count(file, value_node, (*path, str(key_node.value)), counted, open_)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            total += _count(file, item, (*path, i), counted, open_)
    open_.discard(id(node))
    counted[id(node)] = total
    if total > MAX_VALUES:
        raise ConfigError(
            file,
            node.start_mark.line + 1,
            dotted(path),
            f"holds more than {MAX_VALUES:,} values once its aliases are expanded: not loaded",
        )
    return total


class _NotAFile(ValueError):
    def __init__(self) -> None:
        super().__init__("is not a regular file: not read")


class _TooLarge(ValueError):
    def __init__(self) -> None:
        super().__init__(f"is over {MAX_FILE_BYTES // 1024} KB: not read")


class _NotText(ValueError):
    def __init__(self, line: int, column: int) -> None:
        self.line = line
        super().__init__(f"not UTF-8 text (line {line}, column {column}): save the file as UTF-8")


def read_text(path: Path, *, pipe: bool = False) -> str:
    """A file's text. A file that is not UTF-8 (one saved as Latin-1, say) is refused by the
    line of its first bad byte, never shown: it may hold secrets. One over `MAX_FILE_BYTES`
    is not read past that. A config or mapping must be a regular file: a FIFO would hold its
    reader until someone writes it, a device may never end. A secret file may be a pipe
    (``pipe``: a secret manager may hand its secret through one), waited on as asked."""
    mode = path.stat().st_mode
    if not (stat.S_ISREG(mode) or (pipe and stat.S_ISFIFO(mode))):
        raise _NotAFile()
    with path.open("rb") as f:
        raw = f.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise _TooLarge()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        raise _NotText(line, exc.start - (before.rfind(b"\n") + 1) + 1) from None


def _record_lines(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = (*path, str(key_node.value))
            lines[sub] = key_node.start_mark.line + 1
            _record_lines(value_node, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _record_lines(item, (*path, i), lines)


def _expand(
    doc: YamlDoc, value: Any, path: PathKey, env: Mapping[str, str], expanded: set[PathKey]
) -> Any:
    if isinstance(value, dict):
        return {k: _expand(doc, v, (*path, str(k)), env, expanded) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(doc, v, (*path, i), env, expanded) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        expanded.add(path)

        def read(m: re.Match[str]) -> str:
            try:
                return read_text(Path(m.group(1).strip()), pipe=True).rstrip("\r\n")
            except _NotText:
                raise doc.error(path, f"secret file {m.group(1)} is not UTF-8 text") from None
            except (_TooLarge, _NotAFile) as exc:
                raise doc.error(path, f"secret file {m.group(1)} {exc}") from None
            except OSError as exc:
                raise doc.error(
                    path, f"cannot read secret file {m.group(1)}: {exc.strerror}"
                ) from None

        value = _FILE.sub(read, value)

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise doc.error(path, f"environment variable {name} is not set")

        return _ENV.sub(sub, value)
    return value


def validate(doc: YamlDoc, schema: Mapping[str, Any]) -> None:
    """Check ``doc`` against ``schema``; raise one ConfigError carrying every problem."""
    validator = jsonschema.Draft202012Validator(schema)
    problems = sorted(
        (_to_config_error(doc, e) for e in validator.iter_errors(doc.data)),
        key=lambda p: (p.line or 0, p.key),
    )
    if problems:
        first, *rest = problems
        first.more = rest
        raise first


def _to_config_error(doc: YamlDoc, err: jsonschema.ValidationError) -> ConfigError:
    path: PathKey = tuple(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        schema = err.schema if isinstance(err.schema, Mapping) else {}
        allowed = list(schema.get("properties", {}))
        unknown = [k for k in err.instance if k not in allowed]
        key = unknown[0] if unknown else ""
        hint = difflib.get_close_matches(key, allowed, n=1)
        problem = "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else "")
        return doc.error((*path, key), problem)
    if err.validator == "required":
        return doc.error(path, err.message.replace("'", "", 2))
    if _may_show(doc, path, err.instance):
        return doc.error(path, err.message)
    return doc.error(path, _without_value(err))


_SECRET_KEY = re.compile(r"key|secret|token|password|credential", re.I)


def _may_show(doc: YamlDoc, path: PathKey, value: Any) -> bool:
    """jsonschema's message quotes the value (`'PUTT' is not one of [...]`), and a reload logs
    it. A short value written in the file may be quoted; a value from the environment or a
    secret file, under a key that holds secrets, a URL (its user part may hold a password), or
    a whole section may not."""
    if any(p == path[: len(p)] for p in doc.expanded) or any(
        _SECRET_KEY.search(str(part)) for part in path
    ):
        return False
    if isinstance(value, str):
        return len(value) <= 40 and "@" not in value and "://" not in value
    return isinstance(value, bool | int | float)


def _without_value(err: jsonschema.ValidationError) -> str:
    """The message with the value replaced by "the value"; file, line and key show where."""
    message = err.message
    for shown in {repr(err.instance), str(err.instance)}:
        if shown and message.startswith(shown):
            return "the value" + message[len(shown) :]
    return message.replace(repr(err.instance), "the value")


def with_defaults(schema: Mapping[str, Any], data: Any) -> Any:
    """``data`` with the schema's `default:` filled in wherever a key is missing. An object the
    schema describes is made (empty) when missing, so that its own keys get their defaults. A
    local `$ref` is followed; a property beside it adds to (or sets defaults of) what it names.
    Run on valid data: the defaults are what the schema allows."""

    def resolved(node: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return node
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target[part]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        own, named = node.get("properties", {}), target.get("properties", {})
        merged["properties"] = {
            k: {**named.get(k, {}), **own.get(k, {})} for k in dict.fromkeys([*named, *own])
        }
        return merged

    def fill(node: Mapping[str, Any], value: Any) -> Any:
        properties = resolved(node).get("properties")
        if not properties or not isinstance(value, dict):
            return value
        out = dict(value)
        for key, sub in properties.items():
            sub = resolved(sub)
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            elif key not in out and sub.get("type") == "object" and "properties" in sub:
                out[key] = {}
            if key in out:
                out[key] = fill(sub, out[key])
        return out

    return fill(schema, data)


def schema(name: str) -> dict[str, Any]:
    """A JSON schema shipped in ``gateway/schema/``, written in YAML."""
    text = (Path(__file__).parent / "schema" / f"{name}.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded
