"""YAML with the line of every key: `${VAR}` and secret files expanded, every problem named by
file, line and key, values from the environment never shown, and a schema's defaults filled
in (test_config.py shows all of it on the config file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway import yamlfile
from gateway.errors import ConfigError

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "default": "crm"},
        "limits": {
            "type": "object",
            "properties": {"per_minute": {"type": "integer", "default": 10}},
        },
        "cache": {"$ref": "#/$defs/cache", "properties": {"ttl": {"default": 60}}},
        "free": {"type": "object"},
    },
    "$defs": {
        "cache": {
            "type": "object",
            "properties": {"ttl": {"type": "number"}, "size": {"type": "integer", "default": 4}},
        }
    },
}


def test_defaults_fill_what_is_missing_and_keep_what_is_given() -> None:
    filled = yamlfile.with_defaults(SCHEMA, {"limits": {"per_minute": 3}, "extra": [1]})
    assert filled == {
        "name": "crm",
        "limits": {"per_minute": 3},
        "cache": {"ttl": 60, "size": 4},  # a $ref's defaults, and those beside it
        "extra": [1],
    }
    assert "free" not in filled  # no defaults of its own: not made
    assert yamlfile.with_defaults(SCHEMA, {"cache": {"ttl": 1}})["cache"] == {"ttl": 1, "size": 4}
    once = yamlfile.with_defaults(SCHEMA, {})
    once["cache"]["size"] = 99
    assert yamlfile.with_defaults(SCHEMA, {})["cache"]["size"] == 4  # each fill its own copy


def test_lines_keys_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: ${NAME}\nlimits:\n  per_minute: ${RATE:-7}\nlist: [a, b]\n")
    doc = yamlfile.load(path, env={"NAME": "zd"})
    assert doc.data == {"name": "zd", "limits": {"per_minute": "7"}, "list": ["a", "b"]}
    assert doc.line(("limits", "per_minute")) == 3 and doc.line(("list", 1)) == 4
    assert doc.expanded == {("name",), ("limits", "per_minute")}
    assert yamlfile.dotted(("list", 1, "x")) == "list[1].x"
    with pytest.raises(ConfigError, match=r"c\.yaml:1: name: environment variable NAME"):
        yamlfile.load(path, env={})


def test_a_value_from_the_environment_is_never_shown(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: 7\nlimits:\n  per_minute: ${RATE}\nnmae: x\n")
    doc = yamlfile.load(path, env={"RATE": "s3cret-rate"})
    with pytest.raises(ConfigError) as err:
        yamlfile.validate(doc, SCHEMA)
    assert str(err.value).splitlines() == [
        f"{path}:1: name: 7 is not of type 'string'",
        f"{path}:3: limits.per_minute: the value is not of type 'integer'",
        f"{path}:4: nmae: unknown key; did you mean 'name'?",
    ]
