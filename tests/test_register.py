"""`crm-gateway register`: the registration with Khoros Marketing, its token from the
client-credentials grant or given ready, and nothing secret printed."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from conftest import ROOT, FakeKhoros, never_rounded, run_cli

from gateway import register

KHOROS = "https://khoros.example/v2/crm"


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
    done = run_cli(
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


async def test_the_grants_and_the_registrations_timeouts_are_not_rounded_up(
    khoros: FakeKhoros, client_timeouts: list[aiohttp.ClientTimeout]
) -> None:
    out = io.StringIO()
    env = grant_env(khoros)
    code = await register.register("Z", "https://gw.acme.com/api/v1", update=None, out=out, env=env)
    assert code == 0
    assert [t.total for t in client_timeouts] == [register.TIMEOUT] * 2
    assert all(never_rounded(t) for t in client_timeouts)


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
