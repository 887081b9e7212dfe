"""The app's front door: keys from secret files, and the failed-authentication limit."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from conftest import API, AUTH, ROOT, gateway_env

from gateway.config import Config, load_config
from gateway.errors import ConfigError


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
    assert [k.reveal() for k in config.api_keys] == ["from-a-file"]
    secret.unlink()
    with pytest.raises(ConfigError, match=r"auth\.api_keys: cannot read secret file"):
        load_config(config_file, env=gateway_env("https://x.example"))


async def test_too_many_failed_authentications_are_429(make_client: Any, config: Config) -> None:
    client = await make_client(dataclasses.replace(config, max_auth_failures=3))
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
