"""Fuzzing (schemathesis) of a real gateway in front of the sandbox: our own /openapi.json, and
Khoros's published schema (its CRM paths). Zero 5xx, and every answer as documented. Bounded
for `make test` (FUZZ_EXAMPLES, default 40 per operation); `make fuzz` runs many more."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from conftest import SPECS, free_port, gateway, wait_for
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.openapi import document

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
KEY = "fuzz-key-1234"
OURS = schemathesis.openapi.from_dict(document("/api/v1", ""))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def khoros_schema() -> Any:
    spec = json.loads((SPECS / "khoros-custom-crm-callback.openapi.json").read_text())
    spec["paths"] = {
        p: v for p, v in spec["paths"].items() if not p.startswith(("/list", "/asset"))
    }
    spec["servers"] = [{"url": "/api/v1"}]
    return schemathesis.openapi.from_dict(spec)


KHOROS = khoros_schema()
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """`crm-gateway demo` as a user starts it: the sandbox and the gateway, stopped at the end."""
    import signal

    port, sandbox_port = free_port(), free_port()
    proc = gateway(
        "demo",
        "--config",
        "config.example.yaml",
        "--port",
        str(port),
        "--sandbox-port",
        str(sandbox_port),
        env={"GATEWAY_API_KEYS": KEY, "GATEWAY_ADMIN_KEY": None, "ZENDESK_URL": None},
        quiet=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@OURS.parametrize()
@FUZZ
def test_our_api_never_fails_and_answers_as_documented(case: Any, server: str) -> None:
    case.call_and_validate(base_url=server, headers={"Authorization": KEY}, checks=CHECKS)


@KHOROS.parametrize()
@FUZZ
def test_khoros_schema_never_makes_a_5xx(case: Any, server: str) -> None:
    case.call_and_validate(
        base_url=server + "/api/v1", headers={"Authorization": KEY}, checks=[not_a_server_error]
    )
