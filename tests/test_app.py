"""The app's front door: keys from secret files, the failed-authentication limit, headers that
are not text, and the framework's own answers with the one error body."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import API, AUTH, EF_AUTH, ROOT, events, gateway_env, raw_http, tuned

from gateway.config import Config, Secret, load_config
from gateway.errors import ConfigError
from gateway.sandbox.server import CALLS


def test_keys_can_come_from_secret_files(tmp_path: Path) -> None:
    secret = tmp_path / "gateway-keys"
    secret.write_text("from-a-file\n")
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(
        (ROOT / "config.example.yaml")
        .read_text()
        .replace("${GATEWAY_API_KEYS}", "${file:" + str(secret) + "}")
        .replace("mappings/zendesk.yaml", str(ROOT / "mappings/zendesk.yaml"))
    )
    config = load_config(config_file, env=gateway_env("https://x.example"))
    assert [k.reveal() for k in config.auth.api_keys] == ["from-a-file"]
    secret.unlink()
    with pytest.raises(ConfigError, match=r"auth\.api_keys: cannot read secret file"):
        load_config(config_file, env=gateway_env("https://x.example"))


async def test_too_many_failed_authentications_are_429(make_client: Any, config: Config) -> None:
    client = await make_client(tuned(config, auth={"max_failures_per_minute": 3}))
    for _ in range(3):
        assert (
            await client.get(f"{API}/customer/1001", headers={"Authorization": "guess"})
        ).status == 401
    blocked = await client.get(f"{API}/customer/1001", headers=AUTH)  # even with the right key
    assert blocked.status == 429 and blocked.headers["Retry-After"] == "60"
    assert (await blocked.json())["error"] == "TooManyRequests"


async def test_no_limit_by_default(client: Any) -> None:
    for _ in range(40):
        assert (
            await client.get(f"{API}/customer/1001", headers={"Authorization": "x"})
        ).status == 401
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200


# -- what the framework answers, and headers that are not text ----------------------------------


def raw_get(path: str, *headers: bytes, method: bytes = b"GET") -> bytes:
    return (
        method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        + b"".join(h + b"\r\n" for h in headers) + b"\r\n"
    )  # fmt: skip


def error_of(status: int, headers: dict[str, str], body: bytes) -> str:
    assert headers["content-type"].startswith("application/json"), (status, body[:100])
    answer = json.loads(body)
    assert "tracking id" in answer["message"] and answer["message"].endswith(")")
    return str(answer["error"])


@pytest.mark.parametrize("value", [b"test-key-1\xff", b"\xfftest-key-1", b"Bearer \xe9t\xe9"])
async def test_an_authorization_that_is_not_text_is_absent(client: Any, value: bytes) -> None:
    status, headers, body = await raw_http(
        client.port, raw_get(f"{API}/customer/1001", b"Authorization: " + value)
    )
    assert status == 401 and error_of(status, headers, body) == "Unauthorized"


@pytest.mark.parametrize("header", [b"X-API-Key: ef-key\xff", b"X-API-Key: \xc3"])
async def test_an_expertflow_key_that_is_not_text_is_absent(client: Any, header: bytes) -> None:
    status, headers, body = await raw_http(
        client.port, raw_get("/customer?query=phone:%2B41791234567", header)
    )
    assert status == 401 and error_of(status, headers, body) == "Unauthorized"


async def test_other_headers_that_are_not_text_are_ignored(
    make_client: Any, config: Config, capsys: Any
) -> None:
    """X-Debug-Trace, X-Request-Id and Khoros's x-sf-* headers, with PII shown in logs."""
    traced = tuned(config, admin={"api_key": Secret("admin-secret")}, logging={"pii": True})
    client = await make_client(traced)
    status, headers, body = await raw_http(
        client.port,
        raw_get(
            f"{API}/customer/1001",
            b"Authorization: test-key-1",
            b"X-Debug-Trace: admin-secret\xff",
            b"X-Request-Id: abc\xff",
            b"x-sf-user-email: agent\xff@example.com",
            b"x-sf-company-id: \xe9",
        ),
    )
    assert status == 200 and json.loads(body)["id"] == "1001"
    assert "x-debug-trace" not in headers and headers["x-request-id"] != "abc\xff"
    line = next(e for e in events(capsys.readouterr().out) if e["event"] == "request")
    assert line["status"] == 200 and line["agent_email"] is None and line["company_id"] is None
    status, headers, _ = await raw_http(
        client.port,
        raw_get(f"{API}/customer/1001", b"Authorization: test-key-1", b"X-Debug-Trace: \xff"),
    )
    assert status == 200 and "x-debug-trace" not in headers


@pytest.mark.parametrize("method", [b"DELETE", b"OPTIONS", b"PUT", b"TRACE"])
async def test_a_method_a_path_does_not_serve_is_405_with_allow(
    client: Any, sandbox: Any, method: bytes
) -> None:
    for path, allowed in [
        (f"{API}/customer/1001", {"GET", "PATCH"}),
        (f"{API}/case", {"POST"}),
        ("/label", {"GET"}),
    ]:
        before = list(sandbox.app[CALLS])
        status, headers, body = await raw_http(
            client.port, raw_get(path, b"Authorization: test-key-1", method=method)
        )
        assert status == 405 and error_of(status, headers, body) == "MethodNotAllowed"
        assert set(headers["allow"].split(",")) >= allowed
        assert sandbox.app[CALLS] == before


async def test_head_is_answered_on_every_get_operation_like_get_without_a_body(
    client: Any,
) -> None:
    """HEAD on Khoros's GET routes was 405 while /healthz and /label took it."""
    from gateway.api import OPERATIONS

    paths = {"khoros": API, "hybrid_chat": "", "admin": "", "ops": ""}
    ids = {"{type}": "customer", "{id}": "1001"}
    served = [op for op in OPERATIONS if op.method == "GET"]
    assert {op.realm for op in served} >= {"khoros", "hybrid_chat", "ops"}
    for op in served:
        path = paths[op.realm] + op.path
        for name, value in ids.items():
            path = path.replace(name, value)
        query = {"query": "phone:+41791234567"} if op.name == "customer_by_phone" else {}
        headers = {**AUTH, **EF_AUTH}
        get = await client.get(path, params=query, headers=headers)
        head = await client.head(path, params=query, headers=headers)
        assert (head.status, head.content_type) == (get.status, get.content_type), op.name
        if op.name == "metrics":  # the counters move between the two: only a length is said
            assert int(head.headers["Content-Length"]) > 0
        else:
            assert head.headers["Content-Length"] == get.headers["Content-Length"], op.name
        assert await head.read() == b"" and await get.read() != b"", op.name
    # and without the key: the same 401 as GET, without its body
    head = await client.head(f"{API}/customer/1001")
    assert head.status == 401 and await head.read() == b""
    status, headers, _ = await raw_http(
        client.port, raw_get(f"{API}/case", b"Authorization: test-key-1", method=b"HEAD")
    )
    assert status == 405 and headers["allow"] == "POST"


async def test_unknown_paths_are_404_with_the_error_body(client: Any) -> None:
    for path in ("/nope", f"{API}/customers/1/x", "/api/v1/case/1/interactions", "/%ff"):
        status, headers, body = await raw_http(client.port, raw_get(path, b"Authorization: k"))
        assert status == 404 and error_of(status, headers, body) == "NotFound"


async def test_a_body_over_the_limit_is_413_everywhere(client: Any) -> None:
    big = b"x" * (1024 * 1024 + 10)
    for path, auth in [(f"{API}/customer", b"Authorization: test-key-1"), ("/nope", b"A: b")]:
        status, headers, body = await raw_http(
            client.port,
            raw_get(path, auth, b"Content-Type: application/json",
                    b"Content-Length: %d" % len(big), method=b"POST") + big,
        )  # fmt: skip
        assert status in (404, 413) and error_of(status, headers, body) in (
            "PayloadTooLarge",
            "NotFound",
        )


async def test_debug_trace_only_with_the_admin_key(make_client: Any, config: Config) -> None:
    client = await make_client(tuned(config, admin={"api_key": Secret("admin-secret")}))
    plain = await client.get(f"{API}/customer/1001", headers={**AUTH, "X-Debug-Trace": "guess"})
    assert "X-Debug-Trace" not in plain.headers
    traced = await client.get(
        f"{API}/customer/1001", headers={**AUTH, "X-Debug-Trace": "admin-secret"}
    )
    trace = json.loads(traced.headers["X-Debug-Trace"])
    assert [c["path"] for c in trace["upstream_calls"]] == ["/api/v2/users/{{ id }}"]
    call = trace["upstream_calls"][0]
    assert call["status"] == 200 and call["attempt"] == 1 and call["duration_ms"] >= 0
    assert call["url"].startswith("/api/v2/users/1001") and trace["cache"] == ["hit"]
    assert "headers" not in call and "body" not in call
