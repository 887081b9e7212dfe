"""Log lines an operator can answer questions from; secrets never, PII only when asked."""

from __future__ import annotations

import ast
import json
import logging
import re
from typing import Any

from conftest import API, AUTH, ROOT, leaked, raw_http, tuned

from gateway import logs
from gateway.config import Config
from gateway.sandbox.server import Faults


def lines(capsys: Any) -> list[dict[str, Any]]:
    return [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]


async def test_one_line_per_request_with_what_an_operator_needs(client: Any, capsys: Any) -> None:
    headers = {
        **AUTH,
        "X-Request-Id": "khoros-trace-7",
        "x-sf-company-id": "4242",
        "x-sf-initiative": "17",
        "x-sf-user-email": "agent.smith@khoros.example",
    }
    resp = await client.get(f"{API}/customer/1001", headers=headers)
    assert resp.headers["X-Request-Id"] == "khoros-trace-7"
    (line,) = [x for x in lines(capsys) if x["event"] == "request"]
    assert line["request_id"] == "khoros-trace-7"
    assert line["operation"] == "find_customer" and line["method"] == "GET"
    assert line["route"] == "/api/v1/customer/{id}" and line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["upstream_calls"] == 2  # the custom field definitions, then the user
    assert line["cache"] == "miss"
    assert 0 < line["budget_left_ms"] <= 7200
    assert (line["company_id"], line["initiative"]) == ("4242", "17")
    assert line["agent_email"] == "***"  # PII, masked


async def test_bytes_that_are_not_http_are_a_warning_without_what_was_sent(
    client: Any, capsys: Any
) -> None:
    """aiohttp's parser logged each at level error with its traceback (and the bytes)."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Odd: jane\x01doe\r\nConnection: close\r\n\r\n"
    logging.getLogger().addHandler(logs._FORWARD)  # as a serving process has it
    try:
        status, _, _ = await raw_http(client.port, request)
    finally:
        logging.getLogger().removeHandler(logs._FORWARD)
    assert status == 400
    out = capsys.readouterr().out
    found = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [(x["event"], x["level"]) for x in found] == [("http_unreadable", "warning")]
    assert found[0]["problem"] == "BadHttpMessage"
    assert "jane" not in out and "Traceback" not in out


async def test_a_second_request_is_served_by_the_cache(client: Any, capsys: Any) -> None:
    await client.get(f"{API}/meta/object/customer", headers=AUTH)
    await client.get(f"{API}/meta/object/customer", headers=AUTH)
    requests = [x for x in lines(capsys) if x["event"] == "request"]
    assert [(r["cache"], r["upstream_calls"]) for r in requests] == [("miss", 1), ("hit", 0)]


async def test_one_line_per_upstream_attempt_without_ids(
    client: Any, faults: Faults, capsys: Any
) -> None:
    await client.get(f"{API}/meta/object/customer", headers=AUTH)
    faults.status, faults.times = 500, 1
    await client.get(f"{API}/customer/1001", headers=AUTH)
    attempts = [x for x in lines(capsys) if x["event"] == "upstream" and "users" in x["path"]]
    assert [(a["attempt"], a["status"], a["retry_reason"]) for a in attempts] == [
        (1, 500, None),
        (2, 200, "500"),
    ]
    assert all(a["path"] == "/api/v2/users/{{ id }}" and a["method"] == "GET" for a in attempts)
    assert all(isinstance(a["duration_ms"], float) for a in attempts)


async def test_error_tracking_id_is_the_request_id(client: Any, capsys: Any) -> None:
    resp = await client.get(f"{API}/customer/999999", headers={**AUTH, "X-Request-Id": "t-1"})
    assert "(tracking id: t-1)" in (await resp.json())["message"]
    failed = [x for x in lines(capsys) if x["event"] == "request_failed"]
    assert failed[0]["request_id"] == "t-1" and failed[0]["status"] == 404


async def test_start_up_says_which_config_and_mapping(capsys: Any) -> None:
    # Checked end to end in test_cli: the "started" line names config and mapping.
    logs.configure("info", "json")
    logs.get().info("started", config="c.yaml", mapping="m.yaml")
    assert lines(capsys)[0]["mapping"] == "m.yaml"


def test_secrets_never_appear(capsys: Any) -> None:
    logs.configure("info", "json", secrets=["s3cr3t-token-value"], pii=True)
    logs.get().error(
        "oops", detail="Bearer s3cr3t-token-value refused", nested={"k": ["s3cr3t-token-value"]}
    )
    out = capsys.readouterr().out
    assert "s3cr3t-token-value" not in out and out.count("[secret]") == 2


def test_credentials_in_a_url_never_appear_whatever_the_key(capsys: Any) -> None:
    """Config refuses a base URL with credentials; whatever URL still carries some (in an
    error's text, a structural key such as `upstream`) is logged without them."""
    logs.configure("info", "json", pii=True)
    logs.get().info(
        "started",
        upstream="http://user:TOPSECRET@127.0.0.1:18082/api",
        detail="GET https://:TOPSECRET@x.example/v2 and redis://TOPSECRET@r:6379/0 failed",
        url="https://x.com/@janedoe",  # an @ in a path is no credential
    )
    line = lines(capsys)[0]
    assert "TOPSECRET" not in json.dumps(line)
    assert line["upstream"] == "http://[secret]@127.0.0.1:18082/api"
    assert line["detail"] == (
        "GET https://[secret]@x.example/v2 and redis://[secret]@r:6379/0 failed"
    )
    assert line["url"] == "https://x.com/@janedoe"


def test_pii_masked_by_default_and_shown_when_asked(capsys: Any) -> None:
    event = {
        "email": "jane@example.com",
        "detail": "no match for +41 79 123 45 67 or jane@example.com",
        "name": "Jane Doe",
        "body": "My screen broke!",
        "timestamp_like": "2026-11-22",
    }
    logs.configure("info", "json")
    logs.get().info("customer", **event)
    masked = lines(capsys)[0]
    assert masked["email"] == masked["name"] == masked["body"] == "***"
    assert masked["detail"] == "no match for ***67 or j***@example.com"
    assert masked["timestamp_like"] == "2026-11-22"
    logs.configure("info", "json", pii=True)
    logs.get().info("customer", **event)
    shown = lines(capsys)[0]
    assert {k: shown[k] for k in event} == event


async def test_log_pii_setting_reaches_the_request_line(
    make_client: Any, config: Config, capsys: Any
) -> None:
    client = await make_client(tuned(config, logging={"pii": True}))
    await client.get(f"{API}/customer/1001", headers={**AUTH, "x-sf-email": "care@khoros.example"})
    (line,) = [x for x in lines(capsys) if x["event"] == "request"]
    assert line["agent_email"] == "care@khoros.example"


def test_the_leak_scan_can_fail() -> None:
    assert leaked(["ok", "Authorization: test-key-1"], {"test-key-1"}) == [
        ("test-key-1", "Authorization: test-key-1")
    ]
    assert leaked(["ok"], {"test-key-1"}) == []


def test_a_secret_is_replaced_once_even_inside_its_own_mark(capsys: Any) -> None:
    logs.configure("info", "json", secrets=["secret"])
    logs.get().info("oops", detail="my secret, mailed to a@example.com")
    (line,) = lines(capsys)
    assert line["detail"] == "my [secret], mailed to a***@example.com"


def test_a_secret_learned_later_is_redacted_in_text_seen_before(capsys: Any) -> None:
    """Repeated values (a route, an event's name) are redacted once and kept: a secret learned
    at run time (a refreshed token) still reaches them."""
    logs.configure("info", "json")
    logs.get().info("call", route="/hooks/tok-123456789")
    logs.redactor.add("tok-123456789")
    logs.get().info("call", route="/hooks/tok-123456789")
    first, second = lines(capsys)
    assert first["route"] == "/hooks/tok-123456789"
    assert second["route"] == "/hooks/[secret]"


# -- the README names every event ------------------------------------------------------------------

_LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def logged_events() -> dict[str, str]:
    """Every event name the code logs (`log.info("reloaded", ...)`, `.log(level, "python_log")`),
    with where: read from the source of gateway/."""
    found: dict[str, str] = {}
    for file in sorted((ROOT / "gateway").rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            args, name = node.args, node.func.attr
            event = args[0] if name in _LEVELS and args else None
            if name == "log" and len(args) > 1:
                event = args[1]
            if isinstance(event, ast.Constant) and re.fullmatch(r"[a-z][a-z_]+", str(event.value)):
                found.setdefault(str(event.value), f"{file.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_event_the_code_logs_is_in_the_readmes_list() -> None:
    section = (ROOT / "README.md").read_text().split("**Logs**", 1)[1].split("**Health.**", 1)[0]
    listed = set(re.findall(r"`([a-z][a-z_]+)`", section))
    events = logged_events()
    assert len(events) > 40 and {"request", "upstream", "started", "python_log"} <= set(events)
    missing = {name: where for name, where in events.items() if name not in listed}
    assert not missing, f"events logged but not in README.md (Operating, Logs): {missing}"
