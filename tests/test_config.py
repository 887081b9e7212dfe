"""Config: environment expansion, defaults, and errors that name the file, the line and the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
import yaml
from conftest import ROOT, gateway_env

from gateway import yamlfile
from gateway.config import LogFormat, LogLevel, UnknownNumber, defaults, load_config
from gateway.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    return path


def test_example_config_loads_from_the_environment() -> None:
    config = load_config(ROOT / "config.example.yaml", env=gateway_env("https://acme.zendesk.com"))
    assert config.upstream.base_url == "https://acme.zendesk.com"
    assert [k.reveal() for k in config.auth.api_keys] == ["test-key-1", "test-key-2"]
    assert config.upstream.mapping == ROOT / "mappings/zendesk.yaml"
    deadlines = config.deadlines
    assert deadlines.budget("default") == pytest.approx(7.2)
    assert deadlines.budget("meta") == pytest.approx(18)
    assert config.upstream.credentials["oauth_token"].reveal() == ""
    assert "sandbox-token" not in repr(config)  # secrets hide in repr


def test_missing_environment_variable_names_file_line_and_key() -> None:
    env = gateway_env("x")
    del env["ZENDESK_URL"]
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "config.example.yaml", env=env)
    path = ROOT / "config.example.yaml"
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "base_url:" in t)
    assert str(err.value) == (
        f"{path}:{line}: upstream.base_url: environment variable ZENDESK_URL is not set"
    )


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "auth:\n  api_keys: k\nupstream:\n  mapping: m.yaml\n"
        "  base_url: http://x\n  atempt_timeout_seconds: 3\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path}:6: upstream.atempt_timeout_seconds: unknown key; "
        "did you mean 'attempt_timeout_seconds'?"
    )


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "auth: {api_keys: k}\nupstream: {mapping: m.yaml, base_url: ftp//x}\n"
        "deadlines:\n  share: 2\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    lines = str(err.value).splitlines()
    assert lines[0].startswith(f"{path}:2: upstream.base_url: ")
    assert lines[1].startswith(f"{path}:4: deadlines.share: 2 is greater than the maximum")


def test_empty_keys_and_bad_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path, "auth: {api_keys: ' , '}\nupstream: {mapping: m, base_url: 'http://x'}\n"
    )
    with pytest.raises(ConfigError, match=r":1: auth.api_keys: no API key is set"):
        load_config(path)
    with pytest.raises(ConfigError, match=r":3: \(top level\): not valid YAML"):
        load_config(write(tmp_path, "auth:\n  - [\n"))


MINIMAL = "auth:\n  api_keys: k\nupstream:\n  mapping: {mapping}\n  base_url: http://x\n"


def test_a_bare_mapping_name_is_a_shipped_mapping(tmp_path: Path) -> None:
    from gateway import shipped

    for name in ("zendesk", "rt5"):
        config = load_config(write(tmp_path, MINIMAL.format(mapping=name)))
        assert config.upstream.mapping == shipped.mapping(name)
    # A file beside the config with that name does not change what a bare name means.
    (tmp_path / "zendesk").write_text("not a mapping")
    config = load_config(write(tmp_path, MINIMAL.format(mapping="zendesk")))
    assert config.upstream.mapping == shipped.mapping("zendesk")


def test_a_path_is_a_file_relative_to_the_config(tmp_path: Path) -> None:
    for given, expected in [
        ("zendesk.yaml", tmp_path / "zendesk.yaml"),
        ("mappings/zendesk.yaml", tmp_path / "mappings/zendesk.yaml"),
        ("./zendesk", tmp_path / "zendesk"),
        (str(ROOT / "mappings/rt5.yaml"), ROOT / "mappings/rt5.yaml"),
    ]:
        config = load_config(write(tmp_path, MINIMAL.format(mapping=given)))
        assert config.upstream.mapping == expected, given


def test_an_unknown_mapping_name_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.format(mapping="zendsk"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(
        f"{path}:4: upstream.mapping: no mapping named 'zendsk' ships with crm-gateway; "
        "did you mean 'zendesk'?"
    )


def test_config_version_1_is_read_and_any_other_refused(tmp_path: Path) -> None:
    from gateway import shipped

    for version in ("1", "'1'"):
        load_config(write(tmp_path, f"version: {version}\n" + MINIMAL.format(mapping="rt5")))
    # Refused before the schema: a newer format's keys would only read as unknown keys.
    path = write(tmp_path, "version: 2\nnew_section: {}\n" + MINIMAL.format(mapping="rt5"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path}:1: version: config version '2' is not one crm-gateway {shipped.version()} "
        "reads (it reads version 1)"
    )


def test_default_region_from_the_file_or_the_environment(tmp_path: Path) -> None:
    base = "auth: {api_keys: k}\nupstream: {mapping: zendesk, base_url: http://x}\n"
    assert load_config(write(tmp_path, base), env={}).phones.default_region is None
    path = write(tmp_path, base + "phones:\n  default_region: ch\n")
    assert load_config(path, env={}).phones.default_region == "CH"
    # The environment wins, as the deployment's GATEWAY_* variables do; empty means unset.
    assert load_config(path, env={"GATEWAY_DEFAULT_REGION": "de"}).phones.default_region == "DE"
    assert load_config(path, env={"GATEWAY_DEFAULT_REGION": " "}).phones.default_region == "CH"
    example = gateway_env("https://acme.zendesk.com", GATEWAY_DEFAULT_REGION="US")
    assert load_config(ROOT / "config.example.yaml", env=example).phones.default_region == "US"


def test_an_unknown_region_is_refused_where_it_was_given(tmp_path: Path) -> None:
    base = "auth: {api_keys: k}\nupstream: {mapping: zendesk, base_url: http://x}\n"
    path = write(tmp_path, base + "phones:\n  default_region: Switzerland\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert str(err.value).startswith(f"{path}:4: phones.default_region: 'SWITZERLAND' is not")
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, base), env={"GATEWAY_DEFAULT_REGION": "XX"})
    assert str(err.value).startswith("environment: GATEWAY_DEFAULT_REGION: 'XX' is not")


# -- what a refusal may show: file, line and key, never the file's content -----------------------

SECRET = "s3cr3t-value-from-the-env"


def test_a_file_that_is_not_utf8_is_refused_by_file_and_line(tmp_path: Path) -> None:
    text = "auth: {api_keys: k}\n# caf\xe9: la cl\xe9 est " + SECRET + "\nupstream: {}\n"
    path = tmp_path / "latin1.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (
        f"{path}:2: (top level): not UTF-8 text (line 2, column 6): save the file as UTF-8"
    )
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_secret_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "keys"
    secret.write_bytes(b"cl\xe9-" + SECRET.encode())
    path = write(
        tmp_path,
        f"auth:\n  api_keys: ${{file:{secret}}}\nupstream: {{mapping: m.yaml, base_url: 'http://x'}}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == f"{path}:2: auth.api_keys: secret file {secret} is not UTF-8 text"


def test_yaml_errors_do_not_quote_the_file(tmp_path: Path) -> None:
    for text in (
        f"auth:\n  api_keys: {SECRET}\n\tupstream: x\n",
        f"auth: {{api_keys: '{SECRET}\n",
        f"auth:\n  api_keys: *{SECRET}\n",
        f"auth: !!python/object:os.system {SECRET}\n",
    ):
        with pytest.raises(ConfigError) as err:
            load_config(write(tmp_path, text))
        assert "not valid YAML" in str(err.value) and SECRET not in str(err.value)


def test_schema_errors_do_not_show_values_from_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "auth: {api_keys: k, max_failures_per_minute: '${LIMIT}'}\n"
        "upstream:\n  mapping: m.yaml\n  base_url: ${URL}\n  max_connections: many\n"
        "  credentials: {api_token: [1, 2]}\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path, env={"LIMIT": SECRET, "URL": SECRET})
    lines = str(err.value).splitlines()
    assert SECRET not in str(err.value)
    assert lines == [
        f"{path}:1: auth.max_failures_per_minute: the value does not match '^[0-9]+$'",
        f"{path}:4: upstream.base_url: the value does not match '^https?://[^\\\\s/]+(/[^\\\\s]*)?$'",
        f"{path}:5: upstream.max_connections: 'many' is not of type 'integer'",
        f"{path}:6: upstream.credentials.api_token: the value is not of type 'string', 'null'",
    ]


BASE_URL_LINE = next(
    i
    for i, t in enumerate((ROOT / "config.example.yaml").read_text().splitlines(), 1)
    if "base_url:" in t
)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:TOPSECRET@127.0.0.1:18082", "put them in upstream.credentials"),
        ("https://TOPSECRET@acme.zendesk.com", "put them in upstream.credentials"),
        ("https://:TOPSECRET@acme.zendesk.com/", "put them in upstream.credentials"),
        ("http://user:TOPSECRET@[bad", "is not a URL"),
        ("http://[TOPSECRET", "is not a URL"),
        ("http://acme.zendesk.com:TOPSECRET", "is not a URL"),
        ("http://acme.zendesk.com:99999", "is not a URL"),
        ("https://acme.zendesk.com/?token=TOPSECRET", "no query or fragment"),
        ("https://acme.zendesk.com/#TOPSECRET", "no query or fragment"),
    ],
)
def test_a_base_url_with_credentials_or_that_is_no_url_is_refused_unseen(
    url: str, problem: str
) -> None:
    """A password in the URL would be logged with it, and aiohttp refuses it next to the
    mapping's Authorization (every request a 500); a URL that does not parse fails every
    request. Both stop start-up at the line, never quoting the value."""
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "config.example.yaml", env=gateway_env(url))
    text = str(err.value)
    assert text.startswith(f"{ROOT / 'config.example.yaml'}:{BASE_URL_LINE}: upstream.base_url: ")
    assert problem in text and "TOPSECRET" not in text


def test_a_base_url_written_in_the_file_is_refused_unseen_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "auth: {api_keys: k}\nupstream:\n  mapping: zendesk\n"
        "  base_url: https://me:TOPSECRET@acme.zendesk.com\n",
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:4: upstream.base_url: holds credentials")
    assert "TOPSECRET" not in str(err.value)


@pytest.mark.parametrize(
    "url",
    ["redis://:TOPSECRET@127.0.0.1:99999/0", "redis://:TOPSECRET@[::1", "redis://:TOPSECRET@h:x"],
)
def test_a_redis_url_that_does_not_parse_is_refused_unseen(url: str) -> None:
    """`check` said such a URL was fine and `serve` stopped with a traceback."""
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "config.example.yaml", env={**gateway_env("http://x"), "REDIS_URL": url})
    assert "shared_state.redis_url: is not a URL" in str(err.value)
    assert "TOPSECRET" not in str(err.value)


@pytest.mark.parametrize(
    "url",
    ["https://acme.zendesk.com", "http://127.0.0.1:8081/", "https://rt.example.com/REST/2.0",
     "http://[::1]:8081", "https://xn--bcher-kva.example"],
)  # fmt: skip
def test_a_plain_base_url_is_kept(url: str) -> None:
    config = load_config(ROOT / "config.example.yaml", env=gateway_env(url))
    assert config.upstream.base_url == url.rstrip("/")


# -- defaults: written once, in the schema ---------------------------------------------------------


def leaves(node: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """The dotted keys of the config schema; a section of named entries as `<name>`."""
    if "$ref" in node:
        node = {**schema["$defs"][node["$ref"].rsplit("/", 1)[1]], **node}
    if node.get("additionalProperties") is not False or "properties" not in node:
        return [path]
    names = list(node["properties"])
    if path == "cache":  # every cache has the same keys
        return leaves(node["properties"][names[0]], schema, "cache.<name>")
    return [
        k for n in names for k in leaves(node["properties"][n], schema, f"{path}.{n}".strip("."))
    ]


def reference() -> dict[str, list[str]]:
    """The README's configuration reference: each key a row names, with the row's defaults
    (its backticked values, without `${VAR}` expansions)."""
    section = (ROOT / "README.md").read_text().split("## Configuration reference", 1)[1]
    rows: dict[str, list[str]] = {}
    for line in section.split("\n## ", 1)[0].splitlines():
        cells = line.split(" | ")
        if not line.startswith("| `") or len(cells) < 3:
            continue
        named = re.findall(r"`([^`]+)`", cells[0])
        first = named[0]
        parent = first.rpartition(".")[0]
        defaults = [d for d in re.findall(r"`([^`]+)`", cells[1]) if "${" not in d]
        for i, key in enumerate(named):
            rows[key if i == 0 else f"{parent}.{key}"] = defaults[i : i + 1]
    return rows


def test_every_config_key_is_in_the_readme_with_its_default() -> None:
    schema_ = yamlfile.schema("config")
    documented = reference()
    keys = leaves(schema_, schema_)
    assert [k for k in keys if k not in documented] == []
    filled = yamlfile.with_defaults(schema_, {})
    compared = 0
    for key in keys:
        if "<name>" in key or not documented[key]:
            continue
        value: Any = filled
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            assert yaml.safe_load(documented[key][0]) == value, key
            compared += 1
    assert compared > 30  # the scan reads the table


def test_the_defaults_are_valid_and_fill_only_what_is_missing() -> None:
    schema_ = yamlfile.schema("config")
    given = {"auth": {"api_keys": "k"}, "upstream": {"mapping": "m", "base_url": "http://x"}}
    given["cache"] = {"labels": {"ttl_seconds": 1}}
    filled = yamlfile.with_defaults(schema_, given)
    jsonschema.validate(filled, schema_)
    assert filled["cache"]["labels"] == {"ttl_seconds": 1, "max_entries": 4, "stale_seconds": 3600}
    assert filled["cache"]["customer_by_phone"]["ttl_seconds"] == 0  # each cache its own
    assert filled["upstream"]["retry"]["attempts"] == 3 and filled["auth"]["api_keys"] == "k"
    assert defaults("upstream", "circuit_breaker")["min_requests"] == 20


def test_enumerations_are_the_literal_types_of_their_settings() -> None:
    props = yamlfile.schema("config")["properties"]
    assert list(get_args(LogLevel)) == props["logging"]["properties"]["level"]["enum"]
    assert list(get_args(LogFormat)) == props["logging"]["properties"]["format"]["enum"]
    assert list(get_args(UnknownNumber)) == props["expertflow"]["properties"]["not_found"]["enum"]
