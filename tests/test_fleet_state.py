"""The fleet as one gateway process sees it, in process: built from the config
(`REDIS_URL`) and the supervisor's state directory (the host's locks and memory, behind Redis
when it is configured), a Redis that hangs costs no request, and the state it holds (tokens,
holds) outlives a reload."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import API, AUTH, ROOT, RedisServer, events, gateway_env, host_lock_holder

from gateway.config import Config, load_config
from gateway.fleet import state
from gateway.fleet.holds import RedisHolds
from gateway.fleet.host_locks import HostLocks
from gateway.fleet.host_recall import HostRecall
from gateway.fleet.locks import RedisLocks
from gateway.fleet.recall import RedisRecall
from gateway.locks import LocalLocks
from gateway.recall import LocalRecall
from gateway.reloading import HOLDER
from gateway.upstream.shared import LocalHolds, LocalTokenStore, Tokens


def configured(sandbox: Any, **env: str) -> Config:
    url = str(sandbox.make_url("")).rstrip("/")
    return load_config(ROOT / "config.example.yaml", env=gateway_env(url, **env))


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A "Redis" that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def test_redis_is_on_when_redis_url_is_set(sandbox: Any) -> None:
    assert configured(sandbox).shared_state.redis_url is None
    assert isinstance(state.build(configured(sandbox)).holds, LocalHolds)
    config = configured(sandbox, REDIS_URL="redis://:pa%24s@10.0.0.7:6379/0")
    assert isinstance(state.build(config).holds, RedisHolds)
    assert "pa$s" not in repr(config)


async def test_a_supervisors_worker_shares_the_hosts_locks_and_memory(
    sandbox: Any, tmp_path: Any
) -> None:
    alone = state.build(configured(sandbox))  # a process without a supervisor: its own
    assert isinstance(alone.locks, LocalLocks) and isinstance(alone.recall, LocalRecall)
    worker = state.build(configured(sandbox), state_dir=tmp_path)
    assert isinstance(worker.locks, HostLocks) and isinstance(worker.recall, HostRecall)
    assert worker.locks.files.directory == tmp_path
    behind = state.build(configured(sandbox, REDIS_URL="redis://127.0.0.1:9/0"), state_dir=tmp_path)
    assert isinstance(behind.locks, RedisLocks) and isinstance(behind.locks.local, HostLocks)
    assert isinstance(behind.recall, RedisRecall) and isinstance(behind.recall.local, HostRecall)
    for fleet in (alone, worker, behind):
        await fleet.close()


async def test_a_worker_sweeps_the_lock_files_dead_workers_left(
    sandbox: Any, tmp_path: Any, processes: list[Any]
) -> None:
    dead = await host_lock_holder(tmp_path, "case:1")
    processes.append(dead)
    dead.kill()
    dead.wait()
    assert len(list((tmp_path / "locks").iterdir())) == 1
    fleet = state.build(configured(sandbox), state_dir=tmp_path)
    await fleet.start(lambda names: None)
    assert list((tmp_path / "locks").iterdir()) == []
    await fleet.close()


async def test_a_hung_redis_costs_no_request(
    make_client: Any, sandbox: Any, hung_redis: str, capsys: Any
) -> None:
    client = await make_client(configured(sandbox, REDIS_URL=hung_redis))
    started = time.monotonic()
    answers = await asyncio.gather(
        *(client.get(f"{API}/customer/100{1 + n % 3}", headers=AUTH) for n in range(20))
    )
    assert [r.status for r in answers] == [200] * 20
    assert time.monotonic() - started < 3  # one short timeout, then per-process state
    text = await (await client.get("/metrics")).text()
    assert "crm_gateway_shared_state_up 0.0" in text
    down = [e for e in events(capsys.readouterr().out) if e["event"] == "shared_state_unavailable"]
    assert len(down) == 1 and down[0]["level"] == "error"


async def test_tokens_and_holds_outlive_a_reload(
    make_client: Any, sandbox: Any, redis_server: RedisServer, monkeypatch: Any
) -> None:
    url = str(sandbox.make_url("")).rstrip("/")
    for name, value in gateway_env(url, REDIS_URL=redis_server.url).items():
        monkeypatch.setenv(name, value)  # a reload reads the environment
    config = load_config(ROOT / "config.example.yaml")
    client = await make_client(config)
    fleet = client.server.app[state.FLEET]
    store = fleet.tokens(Tokens("", "r0"), None, "client")
    await fleet.holds.hold("account", time.time() + 60)
    assert await client.server.app[HOLDER].reload(config.file)
    assert fleet.tokens(Tokens("", "r0"), None, "client") is store
    assert client.server.app[HOLDER].current.upstream.gate.holds is fleet.holds
    assert await fleet.holds.until(["account"]) > time.time() + 50
    assert isinstance(state.Fleet().tokens(Tokens("", "r0"), None, "c"), LocalTokenStore)
