"""The table of operations: each declared once, and every reader of it in step (the app's
routes in test_openapi.py, the README in test_readme.py); the bodies its schemas refuse."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import API, AUTH, ROOT, events, interaction

from gateway import api
from gateway.api import BY_NAME, OPERATIONS
from gateway.app import create_app
from gateway.body import accepted
from gateway.config import Config
from gateway.errors import BadRequest
from gateway.explain import EXPLAINED
from gateway.mapping.spec import MAPPED, load_mapping
from gateway.openapi import document
from gateway.operation import REALM_STATUSES, Args, Operation
from gateway.runtime import Runtime


def test_each_operation_once_and_each_route_once() -> None:
    assert len(BY_NAME) == len(OPERATIONS) == 17
    routes = [(op.realm, op.method, op.path) for op in OPERATIONS]
    assert len(set(routes)) == len(routes)
    for op in OPERATIONS:
        assert op.path.startswith("/") and op.summary, op.name
        assert op.realm in REALM_STATUSES and (op.budget is None) == (op.realm == "ops")


def test_the_mapping_runs_the_operations_the_table_says() -> None:
    mapping = load_mapping(ROOT / "mappings/zendesk.yaml")
    steps = {n for n, kind in MAPPED.items() if kind in ("record", "records")}
    assert set(mapping.operations) == steps
    assert MAPPED["bestmatch"] == "strategies" and mapping.strategies
    assert {op.name for op in OPERATIONS if op.realm == "khoros"} - set(MAPPED) == {"meta"}


def test_explain_knows_every_operation_of_khoros_and_hybrid_chat() -> None:
    callers = {op.name for op in OPERATIONS if op.realm in ("khoros", "hybrid_chat")}
    assert set(EXPLAINED) == callers and "purge_caches" not in EXPLAINED


def test_the_behaviour_document_lists_every_khoros_route() -> None:
    table = (ROOT / "docs/behaviour.md").read_text().split("### 1.1", 1)[1].split("###", 1)[0]
    for op in (op for op in OPERATIONS if op.realm == "khoros"):
        assert f"{op.method} `{op.path}`" in table, op.name


def test_the_document_has_every_status_an_operation_answers() -> None:
    doc = document(OPERATIONS, {"khoros": "/api/v1"})
    search = doc["paths"]["/api/v1/customers"]["post"]
    assert set(search["responses"]) >= {"200", "204", "400", "401", "502", "504"}
    assert search["requestBody"]["content"]["application/json"]["schema"]["type"] == "object"
    ready = doc["paths"]["/readyz"]["get"]["responses"]
    assert "$ref" not in str(ready["503"]) and "security" not in doc["paths"]["/readyz"]["get"]
    assert doc["paths"]["/customer"]["get"]["parameters"][0]["name"] == "query"


def refused(operation: str, body: dict[str, Any]) -> dict[str, str]:
    spec = BY_NAME[operation].body
    assert spec is not None
    with pytest.raises(BadRequest) as err:
        accepted(spec, body)
    return {f.name: f.message for f in err.value.fields}


def test_case_bodies_name_each_path() -> None:
    assert refused("create_case", {"interactions": "x"}) == {
        "customerId": "Is required.",
        "title": "Is required.",
        "interactions": "Must be a list or null.",
    }
    broken = [interaction("1"), {**interaction("2"), "serviceId": " ", "body": 7}, {"body": ""}]
    problems = refused("create_case", {"customerId": "1", "title": "T", "interactions": broken})
    assert problems["interactions[1].serviceId"] == "Must not be blank."
    assert problems["interactions[1].body"] == "Must be text."
    assert problems["interactions[2].service"] == "Is required."
    assert not any(name.startswith("interactions[0]") for name in problems)


def test_the_reference_schemas_typo_reads_as_customer_id() -> None:
    spec = BY_NAME["create_case"].body
    assert spec is not None
    assert accepted(spec, {"customId": "1001", "title": "T"}) == {
        "customerId": "1001",
        "title": "T",
    }
    both = accepted(spec, {"customId": "1", "customerId": "2", "title": "T"})
    assert both == {"customerId": "2", "title": "T"}
    assert refused("update_case", {"customId": ["1"]}) == {
        "customerId": "Must be text or a whole number or null."
    }


def test_a_best_match_holds_text_where_text_is_wanted() -> None:
    assert refused("bestmatch", {"phoneNumbers": "123", "email": 5}) == {
        "email": "Must be text or null.",
        "phoneNumbers": "Must be a list or null.",
    }
    assert refused("bestmatch", {"orderNumbers": ["A-1", 2]}) == {
        "orderNumbers[1]": "Must be text."
    }
    assert accepted(BY_NAME["bestmatch"].body, {"unknown": {"deep": 1}})


def test_a_purge_names_only_caches() -> None:
    assert refused("purge_caches", {"caches": ["labels", "nope"], "all": True}) == {
        "all": "Unknown field.",
        "caches[1]": "Must be one of: meta, field_definitions, labels, customer_by_phone.",
    }
    assert refused("create_customer", {}) == {"(body)": "Give at least one field."}


async def test_a_new_operation_is_a_row_and_its_handler(
    monkeypatch: pytest.MonkeyPatch, aiohttp_client: Any, config: Config, capsys: Any
) -> None:
    """Served under its realm, behind its realm's key, inside its budget, in /openapi.json and
    in the log: from the one row."""

    async def version(live: Runtime, args: Args) -> Any:
        return {"mapping": live.mapping.name, "asked": args.query.get("q")}

    row = Operation(
        "version", "GET", "/version", version, "khoros", {"type": "object"}, summary="which"
    )
    monkeypatch.setattr(api, "OPERATIONS", (*api.OPERATIONS, row))
    client = await aiohttp_client(create_app(config))
    assert (await client.get(f"{API}/version")).status == 401
    resp = await client.get(f"{API}/version?q=1", headers=AUTH)
    assert resp.status == 200 and await resp.json() == {"mapping": "zendesk", "asked": "1"}
    doc = await (await client.get("/openapi.json")).json()
    assert doc["paths"][f"{API}/version"]["get"]["operationId"] == "version"
    lines = [e for e in events(capsys.readouterr().out) if e["event"] == "request"]
    assert lines[-2]["operation"] == "version" and lines[-2]["budget_left_ms"] > 0
