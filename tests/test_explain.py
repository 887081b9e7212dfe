"""`crm-gateway explain`: the upstream requests of every operation, secrets masked; a dry run
sends nothing."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from gateway import explain
from gateway.config import Config
from gateway.sandbox.server import CALLS


@pytest.mark.parametrize("operation", list(explain.EXPLAINED))
async def test_explain_dry_run_of_every_operation(
    config: Config, operation: str, sandbox: Any
) -> None:
    bodies = {
        "search_customers": {"email": "jane@example.com"},
        "bestmatch": {"email": "jane@example.com", "displayName": "Jane Doe"},
        "create_customer": {"name": "Ada"},
        "update_customer": {"notes": "hi"},
        "create_case": {"customerId": "1001", "title": "T"},
        "update_case": {"status": "closed"},
    }
    out = io.StringIO()
    code = await explain.explain(
        config,
        operation,
        id="+41791234567" if operation == "customer_by_phone" else "1001",
        body=bodies.get(operation, {}),
        kind="customer",
        live=False,
        out=out,
    )
    text = out.getvalue()
    assert code == 0, text
    assert text.startswith(f"{operation} against {config.upstream.base_url} (dry run")
    assert "sandbox-token" not in text and "Authorization: [secret]" in text
    assert sandbox.app[CALLS] == []  # a dry run sends nothing


async def test_explain_live_shows_the_calls_and_the_mapped_result(config: Config) -> None:
    out = io.StringIO()
    code = await explain.explain(
        config, "find_customer", id="1001", body={}, kind="customer", live=True, out=out
    )
    text = out.getvalue()
    assert code == 0
    assert (
        "GET " + config.upstream.base_url + "/api/v2/users/1001?include=identities%2Corganizations"
        in text
    )
    assert "template: /api/v2/users/{{ id }}" in text and "-> 200 in" in text
    result = json.loads(text.split("what the caller gets:\n", 1)[1])
    assert result["name"] == "Jane Doe"


async def test_explain_shows_a_bad_body(config: Config) -> None:
    out = io.StringIO()
    code = await explain.explain(
        config, "create_customer", id="1", body={"shoe": "42"}, kind="customer", live=False, out=out
    )
    assert code == 1 and '"status": 400' in out.getvalue()
