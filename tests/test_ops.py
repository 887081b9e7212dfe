"""/healthz and /readyz: readiness answers for the gateway itself (started, not draining, its
Redis reached), the CRM only when asked (`?upstream=1`), and the CRM's health in metrics."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from conftest import API, AUTH, RedisServer, gateway_env, tuned
from prometheus_client import REGISTRY

from gateway import reloading
from gateway.config import Config, Secret
from gateway.sandbox.server import CALLS, Faults


def upstream_up() -> float | None:
    return REGISTRY.get_sample_value("crm_gateway_upstream_up", {"upstream": "zendesk"})


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_healthz(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_readyz_answers_for_the_gateway_without_calling_the_crm(
    client: Any, sandbox: Any
) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body == {
        "status": "ready",
        "state": "serving",
        "shared_state": "none",
        "upstream": "zendesk",
        "mapping": body["mapping"],
        "circuit": "closed",
    }
    assert body["mapping"].endswith("zendesk.yaml")
    assert sandbox.app[CALLS] == []


async def test_readyz_upstream_asks_a_real_resource(client: Any, sandbox: Any) -> None:
    resp = await client.get("/readyz?upstream=1")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ready" and body["crm"] == "ready" and body["upstream"] == "zendesk"
    assert "GET /api/v2/user_fields" in sandbox.app[CALLS]
    assert not any("/users/me" in c for c in sandbox.app[CALLS])
    await client.get("/readyz?upstream=true")  # within 2 s: the same answer, no second call
    assert sandbox.app[CALLS].count("GET /api/v2/user_fields") == 1
    assert upstream_up() == 1


async def test_the_crm_down_leaves_the_gateway_ready_and_says_so_when_asked(
    make_client: Any, config: Config
) -> None:
    client = await make_client(tuned(config, upstream={"base_url": closed_port()}))
    assert (await client.get("/readyz")).status == 200
    asked = await client.get("/readyz?upstream=1")
    body = await asked.json()
    assert asked.status == 503 and body["status"] == "not ready" and body["crm"] == "not ready"
    assert body["reason"] == "BadGateway" and body["state"] == "serving"
    assert upstream_up() == 0
    assert (await client.get("/readyz")).status == 200  # still: the fleet stays up


async def test_readyz_upstream_is_503_when_the_crm_fails(client: Any, faults: Faults) -> None:
    faults.status = 500
    assert (await client.get("/readyz")).status == 200
    resp = await client.get("/readyz?upstream=1")
    assert resp.status == 503
    assert (await resp.json())["status"] == "not ready"


async def test_readyz_upstream_is_503_with_refused_credentials(
    make_client: Any, config: Config
) -> None:
    wrong = {**config.upstream.credentials, "api_token": Secret("revoked")}
    client = await make_client(tuned(config, upstream={"credentials": wrong}))
    resp = await client.get("/readyz?upstream=1")
    assert resp.status == 503 and (await resp.json())["reason"] == "BadGateway"


async def test_a_request_that_reaches_the_crm_sets_it_up_again(
    make_client: Any, config: Config, faults: Faults
) -> None:
    client = await make_client(config)
    faults.status = 500
    assert (await client.get("/readyz?upstream=1")).status == 503
    assert upstream_up() == 0
    faults.status = None
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200
    assert upstream_up() == 1


async def test_readyz_refuses_an_unknown_upstream_value(client: Any) -> None:
    resp = await client.get("/readyz?upstream=yes")
    body = await resp.json()
    assert resp.status == 400 and body["error"] == "BadRequest" and "upstream" in body["message"]


async def test_draining_is_503_while_requests_are_still_served(client: Any) -> None:
    client.app[reloading.HOLDER].current.lifecycle.draining = True
    ready = await client.get("/readyz")
    body = await ready.json()
    assert ready.status == 503 and body["reason"] == "Draining" and body["state"] == "draining"
    assert ready.headers["Connection"] == "close"  # its connection goes to another replica
    served = await client.get(f"{API}/customer/1001", headers=AUTH)
    assert served.status == 200 and served.headers["Connection"] == "close"


async def test_draining_survives_a_reload(
    client: Any, config: Config, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in gateway_env(str(sandbox.make_url("")).rstrip("/")).items():
        monkeypatch.setenv(name, value)
    holder = client.app[reloading.HOLDER]
    holder.current.lifecycle.draining = True
    assert await holder.reload(config.file)
    assert (await client.get("/readyz")).status == 503


async def test_redis_never_reached_is_not_ready(make_client: Any, config: Config) -> None:
    unreachable = closed_port().replace("http://", "redis://")
    client = await make_client(tuned(config, shared_state={"redis_url": unreachable}))
    resp = await client.get("/readyz")
    body = await resp.json()
    assert resp.status == 503 and body["shared_state"] == "down"
    assert body["reason"] == "SharedStateUnavailable"


async def test_redis_lost_after_start_up_leaves_the_replica_ready(
    make_client: Any, config: Config, redis_server: RedisServer
) -> None:
    """Redis down for every replica must not leave the load balancer with nobody: each
    process serves on with its own state (README, Running several replicas)."""
    client = await make_client(tuned(config, shared_state={"redis_url": redis_server.url}))
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["shared_state"] == "up"
    redis_server.stop()
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["shared_state"] == "down"
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200


async def test_probes_racing_a_failing_crm_share_one_call(
    client: Any, sandbox: Any, faults: Faults
) -> None:
    faults.status = 500
    answers = await asyncio.gather(*(client.get("/readyz?upstream=1") for _ in range(20)))
    assert {a.status for a in answers} == {503}
    assert sandbox.app[CALLS].count("GET /api/v2/user_fields") <= 3  # one probe, its retries
