"""The integrator's tools: check (--online), explain (dry and --live), the debug trace, and
register (against a faked Khoros API)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import API, AUTH, ROOT, FakeKhoros, gateway_env, tuned

from gateway import check, explain, register
from gateway.config import Config, load_config
from gateway.sandbox.server import CALLS

KHOROS = "https://khoros.example/v2/crm"


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_exit_codes_and_messages(editable_files: tuple[Path, Path]) -> None:
    config, mapping = editable_files
    env = {**gateway_env("https://acme.zendesk.com"), "PATH": "/usr/bin:/bin"}
    ok = run("check", "--config", str(config), env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: ")
    text = mapping.read_text()
    text = text.replace("        read: email\n", "        raed: email\n", 1)
    text = text.replace("method: PUT", "method: PUTT", 1)
    mapping.write_text(text)
    bad = run("check", "--config", str(config), env=env)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert all(re.match(rf"{re.escape(str(mapping))}:\d+: [\w.\[\]]+: ", line) for line in lines)
    assert any("fields[1].raed: unknown key; did you mean 'read'?" in line for line in lines)
    assert any("request.method: 'PUTT' is not one of" in line for line in lines)


async def test_check_online_compares_with_the_upstream(
    sandbox: Any, editable_files: tuple[Path, Path]
) -> None:
    config_file, mapping = editable_files
    text = mapping.read_text().replace(
        "      - name: facebook\n",
        "      - {name: tier, read: 'user_fields.\"vip_levl\"', write: user_fields.vip_levl}\n"
        "      - name: facebook\n",
    )
    mapping.write_text(text.replace("        checkbox: {type: checkbox, codec: boolean}\n", "", 1))
    config = load_config(config_file, env=gateway_env(str(sandbox.make_url("")).rstrip("/")))
    out = io.StringIO()
    assert await check.check_online(config, out) == 1
    report = out.getvalue()
    assert "'tier' writes user_fields.vip_levl, which the upstream does not define" in report
    assert "upstream field 'newsletter' (type checkbox) is not mapped" in report
    assert "upstream field 'Refund approved' (type checkbox) is not mapped" in report
    assert (
        report.splitlines()[-1]
        == "online: 1 mapped field(s) missing upstream, 2 upstream field(s) not mapped"
    )


async def test_check_online_clean(config: Config) -> None:
    out = io.StringIO()
    assert await check.check_online(config, out) == 0
    assert (
        out.getvalue().strip()
        == "online: 0 mapped field(s) missing upstream, 0 upstream field(s) not mapped"
    )


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


async def test_debug_trace_only_with_the_admin_key(make_client: Any, config: Config) -> None:

    from gateway.config import Secret

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


async def test_register_posts_the_registration(capsys: Any) -> None:
    env = {
        "KHOROS_ACCESS_TOKEN": "khoros-token-123",
        "GATEWAY_API_KEYS": "key-one,key-two",
        "KHOROS_API_URL": KHOROS,
    }
    out = io.StringIO()
    with aioresponses() as khoros:
        khoros.post(f"{KHOROS}/admin/custom", payload={"id": 4711, "name": "Zendesk"})
        code = await register.register(
            "Zendesk", "https://gw.acme.com/api/v1/", update=None, out=out, env=env
        )
        (method, url), calls = next(iter(khoros.requests.items()))
    assert code == 0 and method == "POST" and str(url) == f"{KHOROS}/admin/custom"
    sent = calls[0].kwargs
    assert sent["headers"]["Authorization"] == "Bearer khoros-token-123"
    assert json.loads(sent["data"]) == {
        "name": "Zendesk",
        "instanceUrl": "https://gw.acme.com/api/v1",
        "authHeaderValue": "key-one",
    }
    assert '"id": 4711' in out.getvalue() and "khoros-token-123" not in out.getvalue()


async def test_register_update_and_errors() -> None:
    env = {
        "KHOROS_ACCESS_TOKEN": "t0ken-xyz",
        "KHOROS_AUTH_HEADER_VALUE": "hdr-value",
        "KHOROS_API_URL": KHOROS,
    }
    out = io.StringIO()
    with aioresponses() as khoros:
        khoros.patch(f"{KHOROS}/admin/custom/4711", status=400, body="Bad hdr-value")
        code = await register.register(
            "Z", "http://gw.local/api/v1", update="4711", out=out, env=env
        )
    assert code == 1
    text = out.getvalue()
    assert "warning: Khoros will call a plain http URL" in text
    assert "PATCH " in text and "-> 400" in text and "hdr-value" not in text
    with pytest.raises(register.RegisterError, match="KHOROS_ACCESS_TOKEN"):
        await register.register("Z", "https://gw", update=None, out=out, env={})
    with pytest.raises(register.RegisterError, match="instance-url"):
        await register.register("Z", "gw.example", update=None, out=out, env=env)
    with pytest.raises(register.RegisterError, match="numeric"):
        await register.register("Z", "https://gw", update="abc", out=out, env=env)


def test_register_command_line_errors_exit_1() -> None:
    done = run(
        "register",
        "--name",
        "Z",
        "--instance-url",
        "https://gw/api/v1",
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1 and "KHOROS_ACCESS_TOKEN is not set" in done.stderr


async def register_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """The real `crm-gateway register`, as a process, while the test's fake Khoros serves."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "register",
        *args,
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def grant_env(khoros: FakeKhoros, **more: str) -> dict[str, str]:
    return {
        "KHOROS_CLIENT_ID": khoros.client_id,
        "KHOROS_CLIENT_SECRET": khoros.client_secret,
        "KHOROS_TOKEN_URL": khoros.token_url,
        "KHOROS_API_URL": khoros.api_url,
        "GATEWAY_API_KEYS": "gw-key-0ne,gw-key-two",
        **more,
    }


async def test_register_obtains_its_token_with_the_client_credentials_grant(
    khoros: FakeKhoros,
) -> None:
    name = ("--name", "Zendesk via crm-gateway", "--instance-url", "https://gw.acme.com/api/v1")
    code, out, err = await register_cli(*name, env=grant_env(khoros))
    assert code == 0, out + err
    assert [g["form"] for g in khoros.grants] == [{"grant_type": "client_credentials"}]
    (made,) = khoros.registrations
    assert made["method"] == "POST" and made["authorization"] == f"Bearer {khoros.issued}"
    assert made["body"] == {
        "name": "Zendesk via crm-gateway",
        "instanceUrl": "https://gw.acme.com/api/v1",
        "authHeaderValue": "gw-key-0ne",
    }
    assert "access token obtained" in out and '"id": 4711' in out and "[secret]" in out
    # A pre-issued token is still accepted, and --update changes a registration.
    code, out, err = await register_cli(
        *name,
        "--update",
        "4711",
        env={
            "KHOROS_ACCESS_TOKEN": khoros.issued,
            "KHOROS_API_URL": khoros.api_url,
            "GATEWAY_API_KEYS": "gw-key-0ne",
        },
    )
    assert code == 0, out + err
    assert len(khoros.grants) == 1 and khoros.registrations[1]["method"] == "PATCH"
    assert khoros.registrations[1]["path"] == "/v2/crm/admin/custom/4711"
    for shown in (out, err):
        for secret in (khoros.client_secret, khoros.issued, "gw-key-0ne"):
            assert secret not in shown


async def test_register_with_a_refused_grant_registers_nothing(khoros: FakeKhoros) -> None:
    name = ("--name", "Z", "--instance-url", "https://gw.acme.com/api/v1")
    wrong = grant_env(khoros, KHOROS_CLIENT_SECRET="not-the-s3cret")
    code, out, err = await register_cli(*name, env=wrong)
    assert code == 1 and khoros.registrations == [] and len(khoros.grants) == 1
    assert "refused the grant: 401 invalid_client" in err
    assert "not-the-s3cret" not in out + err
    # Without a token URL the published placeholder cannot be used: the command says so.
    no_url = {k: v for k, v in grant_env(khoros).items() if k != "KHOROS_TOKEN_URL"}
    code, out, err = await register_cli(*name, env=no_url)
    assert code == 1 and len(khoros.grants) == 1
    assert "KHOROS_TOKEN_URL is not set" in err and "https://example.com/oauth2/token" in err
    # Half a client is a mistake, not a fallback to another credential.
    half = {**grant_env(khoros, KHOROS_ACCESS_TOKEN=khoros.issued), "KHOROS_CLIENT_SECRET": ""}
    code, out, err = await register_cli(*name, env=half)
    assert code == 1 and "KHOROS_CLIENT_SECRET is not set" in err
    assert khoros.registrations == [] and khoros.client_secret not in out + err


async def test_register_prefers_the_grant_to_a_stale_token(khoros: FakeKhoros) -> None:
    env = grant_env(khoros, KHOROS_ACCESS_TOKEN="stale-t0ken")
    code, out, err = await register_cli(
        "--name", "Z", "--instance-url", "https://gw/api/v1", env=env
    )
    assert code == 0, out + err
    assert "KHOROS_ACCESS_TOKEN is ignored" in out and "stale-t0ken" not in out + err
    assert khoros.registrations[0]["authorization"] == f"Bearer {khoros.issued}"
