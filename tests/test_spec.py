"""Mapping files: the shipped one compiles; broken ones fail at load with file:line: key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from gateway.errors import ConfigError
from gateway.mapping.spec import load_mapping

ZENDESK = ROOT / "mappings/zendesk.yaml"


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = ZENDESK.read_text()
    assert old in text, old
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def line_of(path: Path, needle: str) -> int:
    """The last line holding needle: the broken copy of a line comes after the original."""
    return max(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_zendesk_mapping_compiles() -> None:
    spec = load_mapping(ZENDESK)
    assert spec.name == "zendesk"
    assert {f.name for f in spec.objects["customer"].fields} >= {"name", "email", "twitter"}
    assert [s.name for s in spec.strategies] == [
        "email", "externalId", "case", "orderNumber", "phone", "twitter", "facebook",
        "instagram", "name",
    ]  # fmt: skip
    assert [s.score for s in spec.strategies] == [100] * 5 + [30] * 3 + [10]
    assert spec.search_cases is not None and "search_cases" not in spec.operations
    assert spec.interactions.marker_suffix == "]" and spec.interactions.parse is not None
    # A lost create's repeat: a user may stay out of search for minutes; a ticket's repeat
    # carries its idempotency key, and needs no wait.
    assert [spec.objects[k].settle_seconds for k in ("customer", "case")] == [600, 0]


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        (
            "        read: email\n",
            "        raed: email\n",
            "objects.customer.fields[1].raed",
            "unknown key; did you mean 'read'?",
        ),
        (
            'read: "organization.name"',
            'read: "organization.[name"',
            "objects.customer.fields[5].read",
            "JMESPath does not compile",
        ),
        (
            'url: "{{ upstream_url }}/agent/users/{{ record.id }}"',
            'url: "{{ upstream_url }/agent/users"',
            "objects.customer.url",
            "template does not compile",
        ),
        (
            "{field: phone, values:",
            "{field: mobile, values:",
            "operations.bestmatch.strategies[4].field",
            "no customer field named 'mobile'",
        ),
        (
            "{find: cases, field: orderNumber,",
            "{find: cases, field: title,",
            "operations.bestmatch.strategies[3].field",
            "case field 'title' has no `search`",
        ),
        (
            "{find: case, values:",
            "{find: case, field: email, values:",
            "operations.bestmatch.strategies[2].field",
            "`find: case` reads the case by its id",
        ),
        (
            "{find: cases, field: orderNumber,",
            "{find: cases, field: orderNo,",
            "operations.bestmatch.strategies[3].field",
            "no case field named 'orderNo'",
        ),
        (
            "(?s)(?:Unknown author|",
            "(?s)(?P<author_age>x)|(?:Unknown author|",
            "interactions.parse",
            "no part of an interaction is named author_age",
        ),
        (
            "    settle_seconds: 0\n",
            "    created_at: created_at\n",
            "objects.case.created_at",
            "only a customer has it",
        ),
        (
            "method: PUT",
            "method: FETCH",
            "operations.update_customer.steps[2].request.method",
            "'FETCH' is not one of",
        ),
        (
            "      - name: externalId\n",
            "      - name: email\n",
            "objects.customer.fields[3].name",
            "field 'email' is defined twice",
        ),
        (
            "paginate: {next_url: next_page, max_pages: 10}",
            "paginate: {next_url: next_page, page_param: page, more: next_page}",
            "operations.search_customers.steps[0].paginate",
            "is valid under each of",
        ),
        (
            "paginate: {next_url: next_page, max_pages: 10}",
            "paginate: {max_pages: 10}",
            "operations.search_customers.steps[0].paginate",
            "is not valid under any of",
        ),
        (
            'marker: "[khoros:{{ key }}]"',
            'marker: "[{{ key }}]"',
            "interactions.marker",
            "at least 2 constant characters",
        ),
        (
            'result: {records: "steps.found[].users[]"}',
            'result: {record: "steps.found[].users[]"}',
            "operations.search_customers.result.record",
            "this operation needs `records`",
        ),
        (
            "        write: notes\n",
            "        extension: notes\n",
            "objects.customer.fields[4].extension",
            "only a field with `codec: phone` has one",
        ),
    ],
)
def test_broken_mapping_names_file_line_and_key(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    path = broken(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_mapping(path)
    expected = f"{path}:{line_of(path, new.strip())}: {key}: "
    lines = str(err.value).splitlines()
    assert any(line.startswith(expected) and problem in line for line in lines), lines


def test_rt5_mapping_and_config_load() -> None:
    from conftest import gateway_env

    from gateway.config import load_config

    spec = load_mapping(ROOT / "mappings/rt5.yaml")
    assert spec.name == "rt5" and spec.verify_writes
    assert [spec.objects[k].settle_seconds for k in ("customer", "case")] == [60, 60]
    routing = spec.priority_routing
    assert routing is not None and routing.labels.lookup is not None
    env = {
        **gateway_env("x"),
        "RT5_URL": "http://127.0.0.1:8181",
        "RT5_USER": "u",
        "RT5_PASSWORD": "p",
    }
    config = load_config(ROOT / "config.rt5.example.yaml", env=env)
    assert config.upstream.mapping == ROOT / "mappings/rt5.yaml"
    assert config.settings["rt_queue"] == "General"


def test_a_step_cannot_both_repeat_and_paginate(tmp_path: Path) -> None:
    old = """          body: {identity: "{{ item }}"}\n"""
    path = broken(tmp_path, old, old + "        paginate: {next_url: next_page}\n")
    with pytest.raises(ConfigError) as err:
        load_mapping(path)
    assert "update_customer.steps[1].paginate: a step with for_each cannot also paginate" in str(
        err.value
    )


def test_a_codec_or_matcher_added_to_its_registry_needs_no_schema_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The schema's names of codecs and matchers are the registries' (gateway.mapping.codecs)."""
    from gateway.mapping.codecs import CODECS, MATCHES

    path = broken(tmp_path, "codec: datetime", "codec: shouting")
    path.write_text(path.read_text().replace("match: words", "match: loudly", 1))
    with pytest.raises(ConfigError) as err:
        load_mapping(path)
    problems = str(err.value)
    assert "'shouting' is not one of" in problems and "'loudly' is not one of" in problems
    monkeypatch.setitem(CODECS, "shouting", (str.upper, str.lower))
    monkeypatch.setitem(MATCHES, "loudly", lambda record, query: record == query)
    objects = load_mapping(path).objects
    assert "shouting" in {f.codec for f in objects["case"].fields}
    assert "loudly" in {f.match for f in objects["customer"].fields}
