"""OAuth that stays valid: refreshed before expiry and once on a 401, one refresh at a time,
new tokens kept in the operator's file."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from conftest import API, AUTH, ROOT, events, gateway_env, tuned

from gateway.config import Config, load_config
from gateway.sandbox.server import CREDENTIALS, Credentials

FIND = f"{API}/customer/1001"


def oauth_config(sandbox: Any, token_file: Path, **more: str) -> Config:
    oauth = {
        "ZENDESK_EMAIL": "",
        "ZENDESK_API_TOKEN": "",
        "ZENDESK_OAUTH_CLIENT_ID": "sandbox-client",
        "ZENDESK_OAUTH_CLIENT_SECRET": "sandbox-secret",
        "ZENDESK_OAUTH_REFRESH_TOKEN": "sandbox-refresh-token",
        "ZENDESK_OAUTH_TOKEN_FILE": str(token_file),
    }
    env = gateway_env(str(sandbox.make_url("")).rstrip("/"), **{**oauth, **more})
    return load_config(ROOT / "config.example.yaml", env=env)


@pytest.fixture
def creds(sandbox: Any) -> Credentials:
    return sandbox.app[CREDENTIALS]


async def test_first_call_refreshes_and_keeps_tokens_in_the_file(
    make_client: Any, sandbox: Any, creds: Credentials, tmp_path: Path, capsys: Any
) -> None:
    token_file = tmp_path / "secrets" / "zendesk-tokens.json"
    client = await make_client(oauth_config(sandbox, token_file))
    assert (await client.get(FIND, headers=AUTH)).status == 200
    assert creds.refreshes == 1
    saved = json.loads(token_file.read_text())
    assert saved["refresh_token"] == creds.refresh_token != "sandbox-refresh-token"  # rotated
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert saved["access_token"] not in capsys.readouterr().out


async def test_refreshes_before_expiry(
    make_client: Any, sandbox: Any, creds: Credentials, tmp_path: Path
) -> None:
    creds.token_ttl = 0.5
    config = oauth_config(sandbox, tmp_path / "t.json")
    assert config.upstream.oauth is not None
    ahead = dataclasses.replace(config.upstream.oauth, refresh_before_seconds=0.3)
    client = await make_client(tuned(config, upstream={"oauth": ahead}))
    assert (await client.get(FIND, headers=AUTH)).status == 200
    assert creds.refreshes == 1
    await asyncio.sleep(0.25)  # inside the last 0.3 s, while the token is still valid
    assert (await client.get(FIND, headers=AUTH)).status == 200
    assert creds.refreshes == 2


async def test_a_401_refreshes_once_for_all_waiting_requests(
    make_client: Any, sandbox: Any, creds: Credentials, tmp_path: Path
) -> None:
    client = await make_client(oauth_config(sandbox, tmp_path / "t.json"))
    assert (await client.get(FIND, headers=AUTH)).status == 200
    creds.issued.clear()  # revoked upstream
    responses = await asyncio.gather(*(client.get(FIND, headers=AUTH) for _ in range(20)))
    assert [r.status for r in responses] == [200] * 20
    assert creds.refreshes == 2  # the first token, then exactly one refresh for all 20


async def test_a_restart_uses_the_saved_tokens(
    make_client: Any, sandbox: Any, creds: Credentials, tmp_path: Path
) -> None:
    token_file = tmp_path / "t.json"
    first = await make_client(oauth_config(sandbox, token_file))
    assert (await first.get(FIND, headers=AUTH)).status == 200
    # The environment still holds the first refresh token, which has rotated away since.
    second = await make_client(oauth_config(sandbox, token_file))
    assert (await second.get(FIND, headers=AUTH)).status == 200
    assert creds.refreshes == 1


async def test_a_refused_refresh_is_502_and_loud(
    make_client: Any, sandbox: Any, tmp_path: Path, capsys: Any
) -> None:
    config = oauth_config(sandbox, tmp_path / "t.json", ZENDESK_OAUTH_CLIENT_SECRET="wrong")
    client = await make_client(config)
    resp = await client.get(FIND, headers=AUTH)
    assert resp.status == 502
    out = capsys.readouterr().out
    assert any(e["event"] == "oauth_refresh_failed" for e in events(out)) and "wrong" not in out
