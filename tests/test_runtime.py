"""Hot reload: validated first, swapped atomically, requests in flight finish on the config they
started with, an invalid file is refused and the running config keeps serving."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import API, AUTH, events, free_port, gateway, gateway_env, wait_for

from gateway.config import load_config
from gateway.runtime import HOLDER
from gateway.sandbox.server import Faults


def rename_name_field(mapping: Path, to: str = "fullName") -> None:
    """What an integrator does: rename the field, and the best-match strategy that uses it."""
    text = mapping.read_text()
    text = text.replace("      - name: name\n        label: Name\n", f"      - name: {to}\n", 1)
    mapping.write_text(text.replace("{field: name, ", f"{{field: {to}, ", 1))


def env_for(sandbox: Any, **more: str) -> dict[str, str]:
    return gateway_env(str(sandbox.make_url("")).rstrip("/"), **more)


async def test_reload_swaps_and_requests_in_flight_keep_their_config(
    make_client: Any, sandbox: Any, faults: Faults, editable_files: tuple[Path, Path], capsys: Any
) -> None:
    config_file, mapping = editable_files
    client = await make_client(load_config(config_file, env=env_for(sandbox)))
    await client.get(f"{API}/meta/object/customer", headers=AUTH)
    faults.delay = 0.4
    in_flight = asyncio.create_task(client.get(f"{API}/customer/1001", headers=AUTH))
    await asyncio.sleep(0.1)
    rename_name_field(mapping)
    holder = client.server.app[HOLDER]
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env_for(sandbox).items():
            mp.setenv(k, v)
        assert await holder.reload(config_file) is True
    old = await (await in_flight).json()
    assert old["name"] == "Jane Doe" and "fullName" not in old
    faults.delay = 0
    new = await (await client.get(f"{API}/customer/1001", headers=AUTH)).json()
    assert new["fullName"] == "Jane Doe" and "name" not in new
    assert any(e["event"] == "reloaded" for e in events(capsys.readouterr().out))


async def test_an_invalid_file_is_refused_and_the_old_config_serves(
    make_client: Any, sandbox: Any, faults: Faults, editable_files: tuple[Path, Path], capsys: Any
) -> None:
    config_file, mapping = editable_files
    client = await make_client(load_config(config_file, env=env_for(sandbox)))
    await client.get(f"{API}/meta/object/customer", headers=AUTH)
    faults.delay = 0.3
    in_flight = asyncio.create_task(client.get(f"{API}/customer/1001", headers=AUTH))
    await asyncio.sleep(0.05)
    mapping.write_text(
        mapping.read_text().replace("        read: email\n", "        raed: email\n")
    )
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env_for(sandbox).items():
            mp.setenv(k, v)
        assert await client.server.app[HOLDER].reload(config_file) is False
    assert (await in_flight).status == 200
    faults.delay = 0
    refused = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "reload_refused" in x]
    assert any("raed: unknown key; did you mean 'read'?" in p for p in refused[0]["problems"])
    resp = await client.get(f"{API}/customer/1001", headers=AUTH)
    assert resp.status == 200 and (await resp.json())["email"] == "jane@example.com"


async def test_a_changed_file_is_picked_up_by_the_watcher(
    make_client: Any, sandbox: Any, editable_files: tuple[Path, Path], monkeypatch: Any
) -> None:
    config_file, mapping = editable_files
    for k, v in env_for(sandbox).items():
        monkeypatch.setenv(k, v)
    config_file.write_text(
        config_file.read_text().replace("watch_seconds: 1 ", "watch_seconds: 0.1 ")
    )
    client = await make_client(load_config(config_file))
    assert client.server.app[HOLDER].current.config.watch_seconds == 0.1
    await asyncio.sleep(0.15)
    rename_name_field(mapping, "customerName")
    for _ in range(40):
        body = await (await client.get(f"{API}/customer/1001", headers=AUTH)).json()
        if "customerName" in body:
            break
        await asyncio.sleep(0.1)
    assert body["customerName"] == "Jane Doe"


def test_sighup_reloads_a_running_server(
    processes: Any, sandbox_process: str, editable_files: tuple[Path, Path]
) -> None:
    config_file, mapping = editable_files
    config_file.write_text(
        config_file.read_text().replace("watch_seconds: 1 ", "watch_seconds: 0 ")
    )
    port = free_port()
    proc = gateway("serve", "--config", str(config_file), "--port", str(port),
                   env=gateway_env(sandbox_process))  # fmt: skip
    processes.append(proc)
    url = f"http://127.0.0.1:{port}/api/v1/customer/1001"
    assert "name" in json.loads(wait_for(url, {"Authorization": "test-key-1"}))
    rename_name_field(mapping)
    proc.send_signal(signal.SIGHUP)
    for _ in range(50):
        body = json.loads(wait_for(url, {"Authorization": "test-key-1"}))
        if "fullName" in body:
            break
        time.sleep(0.1)
    assert body["fullName"] == "Jane Doe"


@pytest.fixture
def sandbox_process(processes: Any) -> str:
    port = free_port()
    processes.append(gateway("sandbox", "--port", str(port)))
    wait_for(
        f"http://127.0.0.1:{port}/api/v2/users/1001",
        {"Authorization": "Bearer sandbox-oauth-token"},
    )
    return f"http://127.0.0.1:{port}"
