"""Hot reload: validated first, swapped atomically, requests in flight finish on the config they
started with, an invalid file is refused and the running config keeps serving."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    API,
    AUTH,
    alias_bomb,
    events,
    free_port,
    gateway,
    gateway_env,
    read_log,
    wait_for,
)

from gateway import yamlfile
from gateway.config import Listen, load_config
from gateway.reloading import HOLDER
from gateway.sandbox.server import Faults


def rename_name_field(mapping: Path, to: str = "fullName") -> None:
    """What an integrator does: rename the field, and the best-match strategy that uses it."""
    text = mapping.read_text()
    text = text.replace("      - name: name\n        label: Name\n", f"      - name: {to}\n", 1)
    mapping.write_text(text.replace("{field: name, ", f"{{field: {to}, ", 1))


def env_for(sandbox: Any, **more: str) -> dict[str, str]:
    return gateway_env(str(sandbox.make_url("")).rstrip("/"), **more)


@pytest.fixture
def sandbox_env(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment the example config reads, pointed at the sandbox, for reloads to read."""
    for k, v in env_for(sandbox).items():
        monkeypatch.setenv(k, v)


def watch_every(config_file: Path, seconds: float) -> None:
    text = config_file.read_text()
    config_file.write_text(text.replace("watch_seconds: 1 ", f"watch_seconds: {seconds} "))


async def until_renamed(client: Any, name: str, pause: float) -> dict[str, Any]:
    """Jane as the gateway answers once the field is renamed (or after 40 tries)."""
    for _ in range(40):
        body: dict[str, Any] = await (await client.get(f"{API}/customer/1001", headers=AUTH)).json()
        if name in body:
            break
        await asyncio.sleep(pause)
    return body


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
    make_client: Any, sandbox_env: None, editable_files: tuple[Path, Path]
) -> None:
    config_file, mapping = editable_files
    watch_every(config_file, 0.1)
    client = await make_client(load_config(config_file))
    assert client.server.app[HOLDER].current.config.server.watch_seconds == 0.1
    await asyncio.sleep(0.15)
    rename_name_field(mapping, "customerName")
    body = await until_renamed(client, "customerName", 0.1)
    assert body["customerName"] == "Jane Doe"


def test_sighup_reloads_a_running_server(
    processes: Any, sandbox_process: str, editable_files: tuple[Path, Path]
) -> None:
    config_file, mapping = editable_files
    watch_every(config_file, 0)
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


# -- reloads that keep working, and never show the file ------------------------------------------

SECRET = "s3cr3t-in-the-file"


def latin1(config_file: Path) -> None:
    """What an editor on another machine does: saves the file as Latin-1."""
    text = config_file.read_text() + f"# cl\xe9 de secours: {SECRET}\n"
    config_file.write_bytes(text.encode("latin-1"))


async def test_a_latin1_file_is_refused_and_the_next_valid_edit_applies(
    make_client: Any, sandbox_env: None, editable_files: tuple[Path, Path], capsys: Any
) -> None:
    config_file, mapping = editable_files
    watch_every(config_file, 0.05)
    good = config_file.read_text()
    client = await make_client(load_config(config_file))
    holder = client.server.app[HOLDER]
    await asyncio.sleep(0.1)
    latin1(config_file)
    line = len(config_file.read_bytes().splitlines())
    for _ in range(40):
        out = capsys.readouterr().out
        refused = [e for e in events(out) if e["event"] == "reload_refused"]
        if refused:
            break
        await asyncio.sleep(0.05)
    assert refused[0]["problems"] == [
        f"{config_file}:{line}: (top level): not UTF-8 text (line {line}, column 5): "
        "save the file as UTF-8"
    ]
    assert SECRET not in out
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200
    config_file.write_text(good)  # fixed: the watcher is still there and takes it
    rename_name_field(mapping, "customerName")
    body = await until_renamed(client, "customerName", 0.05)
    assert body["customerName"] == "Jane Doe" and holder.current.config.file == str(config_file)


async def test_any_failure_while_loading_is_a_refusal_that_shows_no_text(
    make_client: Any,
    sandbox_env: None,
    editable_files: tuple[Path, Path],
    monkeypatch: Any,
    capsys: Any,
) -> None:
    import gateway.runtime

    config_file, _ = editable_files
    client = await make_client(load_config(config_file))

    def broken(config: Any, mapping: Any = None, **given: Any) -> Any:
        raise UnicodeDecodeError("utf-8", SECRET.encode(), 0, 1, "invalid start byte")

    with monkeypatch.context() as mp:
        mp.setattr(gateway.runtime, "build", broken)
        assert await client.server.app[HOLDER].reload(config_file) is False
    out = capsys.readouterr().out
    refused = [e for e in events(out) if e["event"] == "reload_refused"]
    assert refused[0]["problems"] == ["UnicodeDecodeError while loading"] and SECRET not in out
    assert await client.server.app[HOLDER].reload(config_file) is True


async def test_logging_settings_apply_on_reload(
    make_client: Any, sandbox_env: None, editable_files: tuple[Path, Path], capsys: Any
) -> None:
    config_file, _ = editable_files
    client = await make_client(load_config(config_file))
    holder = client.server.app[HOLDER]
    search = {"email": "jane@example.com"}

    async def logged_email() -> Any:
        capsys.readouterr()
        await client.post(
            f"{API}/customers", json=search, headers={**AUTH, "x-sf-email": "agent@example.com"}
        )
        lines = [e for e in events(capsys.readouterr().out) if e["event"] == "request"]
        return lines[0]["agent_email"] if lines else None

    assert await logged_email() == "***"  # masked by default
    text = config_file.read_text()
    config_file.write_text(text.replace("pii: ${LOG_PII:-false}", "pii: true"))
    assert await holder.reload(config_file)
    assert await logged_email() == "agent@example.com"
    config_file.write_text(text.replace("level: info ", "level: warning "))
    assert await holder.reload(config_file)
    assert await logged_email() is None  # request lines are info: no longer written
    config_file.write_text(text)
    assert await holder.reload(config_file)
    assert await logged_email() == "***"


def test_sighup_of_a_broken_file_shows_nothing_and_keeps_serving(
    processes: Any, sandbox_process: str, editable_files: tuple[Path, Path]
) -> None:
    config_file, mapping = editable_files
    watch_every(config_file, 0)
    good = config_file.read_text()
    port = free_port()
    env = gateway_env(sandbox_process, EXPERTFLOW_API_KEYS=SECRET)
    proc = gateway("serve", "--config", str(config_file), "--port", str(port), env=env)
    processes.append(proc)
    url = f"http://127.0.0.1:{port}/api/v1/customer/1001"
    assert "name" in json.loads(wait_for(url, {"Authorization": "test-key-1"}))
    broken = [
        lambda: latin1(config_file),
        lambda: config_file.write_text(good + f"oops: [{SECRET}\n"),
        lambda: config_file.write_text(good.replace("max_connections: 50", "max_connections: x")),
        lambda: mapping.write_text(mapping.read_text() + f"\n\t{SECRET}: x\n"),
    ]
    original_mapping = mapping.read_text()
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    out = b""
    for n, damage in enumerate(broken, 1):
        damage()
        proc.send_signal(signal.SIGHUP)
        for _ in range(100):  # until this reload has been refused
            out += proc.stdout.read() or b""
            if out.count(b'"reload_refused"') == n:
                break
            time.sleep(0.1)
        assert "name" in json.loads(wait_for(url, {"Authorization": "test-key-1"}))
        config_file.write_text(good)
        mapping.write_text(original_mapping)
    rename_name_field(mapping)
    proc.send_signal(signal.SIGHUP)
    for _ in range(50):
        body = json.loads(wait_for(url, {"Authorization": "test-key-1"}))
        if "fullName" in body:
            break
        time.sleep(0.1)
    assert body["fullName"] == "Jane Doe"
    processes.remove(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    text = (out + (proc.stdout.read() or b"")).decode(errors="replace")
    assert SECRET not in text and "Traceback" not in text and "Task exception" not in text
    refusals = [e for e in events(text) if e["event"] == "reload_refused"]
    assert len(refusals) == 4 and all(":" in p for e in refusals for p in e["problems"])


# -- reloads that cost what a config may, off the event loop ---------------------------------------


async def test_an_alias_bomb_is_refused_at_once_and_the_old_config_serves(
    make_client: Any, sandbox_env: None, editable_files: tuple[Path, Path], capsys: Any
) -> None:
    """A 9-level "billion laughs" appended to the config took each worker to 8-10 GB and was
    refused after 4 minutes."""
    config_file, _ = editable_files
    client = await make_client(load_config(config_file))
    holder = client.server.app[HOLDER]
    good = config_file.read_text()
    config_file.write_text(good + alias_bomb(9))
    tracemalloc.start()
    try:
        assert await holder.reload(config_file) is False
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak  # the files' nodes, never the expansion
    (refused,) = [e for e in events(capsys.readouterr().out) if e["event"] == "reload_refused"]
    line = len(good.splitlines()) + 6  # lol5: the first level past the limit
    assert refused["problems"] == [
        f"{config_file}:{line}: lol5: holds more than {yamlfile.MAX_VALUES:,} values once its "
        "aliases are expanded: not loaded"
    ]
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200
    assert holder.current.config.file == str(config_file)


async def test_a_reload_reads_its_files_off_the_event_loop(
    make_client: Any,
    sandbox_env: None,
    editable_files: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reload whose file takes its time (here the config file, read only once a request has
    been answered meanwhile) does not hold up the requests of the process."""
    config_file, _ = editable_files
    watch_every(config_file, 0)  # this reload alone waits
    client = await make_client(load_config(config_file))
    holder = client.server.app[HOLDER]
    answered = threading.Event()
    read_text = yamlfile.read_text

    def slow_read(path: Path) -> str:
        if path == config_file:
            answered.wait(10)  # if the loop is blocked, nothing answers: read anyway, and fail
        return read_text(path)

    monkeypatch.setattr(yamlfile, "read_text", slow_read)
    reload = asyncio.create_task(holder.reload(config_file))
    await asyncio.sleep(0.01)
    resp = await client.get(f"{API}/customer/1001", headers=AUTH)
    reloading_still = not reload.done()
    answered.set()
    assert resp.status == 200 and reloading_still
    assert await reload is True


def test_workers_refuse_an_alias_bomb_promptly_and_stay_small(
    processes: Any, sandbox_process: str, editable_files: tuple[Path, Path], tmp_path: Path
) -> None:
    """The attack as it was made: a bomb appended to the watched config of `--workers 2`."""
    config_file, _ = editable_files
    watch_every(config_file, 0.1)
    port, log = free_port(), tmp_path / "gateway.log"
    supervisor = gateway("serve", "--config", str(config_file), "--port", str(port),
                         "--workers", "2", env=gateway_env(sandbox_process), log=log)  # fmt: skip
    processes.append(supervisor)
    url = f"http://127.0.0.1:{port}/api/v1/customer/1001"
    wait_for(url, AUTH)
    for _ in range(150):  # both workers serving, and so watching
        workers = [str(e["pid"]) for e in read_log(log) if e["event"] == "started"]
        if len(workers) == 2:
            break
        time.sleep(0.1)
    assert len(workers) == 2
    config_file.write_text(config_file.read_text() + alias_bomb(9))
    for _ in range(300):  # each worker refuses it (within a second or so; it took 4 minutes)
        refused = [e for e in read_log(log) if e["event"] == "reload_refused"]
        if len(refused) == 2:
            break
        time.sleep(0.1)
    assert len(refused) == 2 and all("lol5" in e["problems"][0] for e in refused)
    assert "name" in json.loads(wait_for(url, AUTH))
    for pid in workers:  # the most memory each worker ever held: it was 8-10 GB
        status = Path(f"/proc/{pid}/status").read_text()
        peak_kb = int(next(x for x in status.splitlines() if x.startswith("VmHWM:")).split()[1])
        assert peak_kb < 300 * 1024, (pid, peak_kb)


# -- what a reload cannot change, and what it is compared with -----------------------------------


async def test_a_setting_only_a_restart_applies_is_named_and_kept(
    make_client: Any, sandbox_env: None, editable_files: tuple[Path, Path], capsys: Any
) -> None:
    config_file, _ = editable_files
    client = await make_client(load_config(config_file))
    holder = client.server.app[HOLDER]
    text = config_file.read_text()
    config_file.write_text(text.replace("base_path: /api/v1", "base_path: /api/v2", 1))
    capsys.readouterr()
    assert await holder.reload(config_file) is True
    warned = [e for e in events(capsys.readouterr().out) if e["event"] == "reload_needs_restart"]
    assert [(e["setting"], e["kept"]) for e in warned] == [("server.base_path", "/api/v1")]
    assert holder.current.config.server.base_path == "/api/v2"  # the routes still say /api/v1
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200


async def test_where_to_listen_given_at_start_is_kept_by_every_reload(
    make_client: Any, sandbox_env: None, editable_files: tuple[Path, Path], capsys: Any
) -> None:
    """`--port`, `--host`, GATEWAY_PORT and GATEWAY_HOST beat the file at every reload too: a
    reload compared the file's port with the one given and warned that it needed a restart."""
    config_file, _ = editable_files
    given = Listen(host="127.0.0.2", port=18099)
    client = await make_client(load_config(config_file, listen=given))
    holder = client.server.app[HOLDER]
    text = config_file.read_text()
    for edit in (text, text.replace("port: 8080", "port: 8081", 1)):
        config_file.write_text(edit)
        capsys.readouterr()
        assert await holder.reload(config_file) is True
        said = [e["event"] for e in events(capsys.readouterr().out)]
        assert "reloaded" in said and "reload_needs_restart" not in said
        server = holder.current.config.server
        assert (server.host, server.port) == ("127.0.0.2", 18099)
        assert holder.current.config.listen == given


def test_a_reload_of_workers_started_with_a_port_warns_of_nothing(
    processes: Any, sandbox_process: str, editable_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config_file, _ = editable_files
    watch_every(config_file, 0)
    port, log = free_port(), tmp_path / "gateway.log"
    env = gateway_env(sandbox_process, GATEWAY_HOST="127.0.0.1")
    supervisor = gateway("serve", "--config", str(config_file), "--port", str(port),
                         "--workers", "2", env=env, log=log)  # fmt: skip
    processes.append(supervisor)
    for _ in range(150):  # both workers serving
        if len([e for e in read_log(log) if e["event"] == "started"]) == 2:
            break
        time.sleep(0.1)
    supervisor.send_signal(signal.SIGHUP)
    for _ in range(100):
        said = [e["event"] for e in read_log(log)]
        if said.count("reloaded") == 2:
            break
        time.sleep(0.1)
    assert said.count("reloaded") == 2 and "reload_needs_restart" not in said
    assert "name" in json.loads(wait_for(f"http://127.0.0.1:{port}/api/v1/customer/1001", AUTH))
