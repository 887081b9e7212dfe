"""YAML with the line of every key: `${VAR}` and secret files expanded, every problem named by
file, line and key, values from the environment never shown, and a schema's defaults filled
in (test_config.py shows all of it on the config file)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest
from conftest import alias_bomb

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


# -- files too large to be config, and alias bombs: refused before they cost anything ------------


def loaded_within(path: Path) -> tuple[ConfigError | None, int]:
    """What loading ``path`` raised, and the peak of the memory it allocated."""
    tracemalloc.start()
    try:
        yamlfile.load(path)
    except ConfigError as exc:
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return None, 0


@pytest.mark.parametrize("levels", [6, 9, 100])
def test_an_alias_bomb_is_refused_by_line_without_being_expanded(
    tmp_path: Path, levels: int
) -> None:
    """A 9-level bomb took two workers to 8-10 GB for 4 minutes; a 6-level one stalled the
    event loop 1.3 s. Its values are counted on the composed nodes, each node once."""
    path = tmp_path / "c.yaml"
    path.write_text("name: crm\n" + alias_bomb(levels))
    error, peak = loaded_within(path)
    assert error is not None
    # lol5 is the first level over the limit: 10**5 lists of "lol", and the lists themselves
    assert str(error) == (
        f"{path}:7: lol5: holds more than {yamlfile.MAX_VALUES:,} values once its aliases are "
        "expanded: not loaded"
    )
    assert peak < 2 * 1024 * 1024, peak  # the file's nodes, never their expansion


def test_anchors_and_aliases_within_the_limit_load_as_written(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(alias_bomb(4) + "base: &base {a: 1, b: 2}\nmerged: {<<: *base, b: 3}\n")
    doc = yamlfile.load(path)
    assert len(doc.data["lol4"]) == 10 and doc.data["lol4"][9][9][9] == [["lol"]] * 10
    assert doc.data["merged"] == {"a": 1, "b": 3}
    assert (
        doc.line(("merged", "b")) == 7 and doc.line(("lol4", 3)) == 4
    )  # where the value it names is


def test_a_value_that_contains_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: crm\nloop: &loop [1, *loop]\n")
    with pytest.raises(ConfigError) as err:
        yamlfile.load(path)
    assert str(err.value) == f"{path}:2: loop[1]: contains itself through an alias: not loaded"


def test_a_file_over_a_megabyte_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: crm\n" + "# padding\n" * (yamlfile.MAX_FILE_BYTES // 10))
    with pytest.raises(ConfigError) as err:
        yamlfile.load(path)
    assert str(err.value) == f"{path}: (top level): the file is over 1024 KB: not read"
    secret = tmp_path / "secret"
    secret.write_bytes(b"x" * (yamlfile.MAX_FILE_BYTES + 1))
    path.write_text(f"name: ${{file:{secret}}}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:1: name: secret file .* is over 1024 KB"):
        yamlfile.load(path)


def test_nesting_too_deep_for_the_parser_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError) as err:
        yamlfile.load(path)
    assert str(err.value) == f"{path}: (top level): nested too deeply: not loaded"


def test_a_control_character_is_refused_at_its_line_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('name: crm\nfree: {token: "s3cr\x01t"}\n')
    with pytest.raises(ConfigError) as err:
        yamlfile.load(path)
    assert str(err.value) == (
        f"{path}:2: (top level): not valid YAML: a control character (#x1) is not allowed"
    )


def test_a_fifo_or_a_device_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer comes: a reload would wait for ever.
    A secret file may be one (tests/test_serving.py reads its keys from one); not a device."""
    fifo = tmp_path / "mapping.yaml"
    os.mkfifo(fifo)
    for refused in (fifo, Path("/dev/null")):
        with pytest.raises(ConfigError) as err:
            yamlfile.load(refused)
        assert str(err.value) == f"{refused}: (top level): the file is not a regular file: not read"
    path = tmp_path / "c.yaml"
    path.write_text("name: ${file:/dev/zero}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:1: name: secret file .* not a regular file"):
        yamlfile.load(path)


def test_a_url_is_never_quoted_in_a_problem(tmp_path: Path) -> None:
    """A URL may carry a password in its user part; a short one would otherwise be quoted."""
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^https://"}}}
    path = tmp_path / "c.yaml"
    for url in ("ftp://u:pw1@h", "u:pw1@crm example"):
        path.write_text(f"name: '{url}'\n")
        with pytest.raises(ConfigError) as err:
            yamlfile.validate(yamlfile.load(path), schema)
        assert "pw1" not in str(err.value) and "name: the value does not match" in str(err.value)
