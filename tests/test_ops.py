"""/healthz and /readyz."""

from __future__ import annotations

import socket
from typing import Any

from conftest import tuned

from gateway.config import Config, Secret
from gateway.sandbox.server import CALLS, Faults


async def test_healthz(client: Any) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_readyz_asks_a_real_resource(client: Any, sandbox: Any) -> None:
    resp = await client.get("/readyz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ready" and body["upstream"] == "zendesk"
    assert "GET /api/v2/user_fields" in sandbox.app[CALLS]
    assert not any("/users/me" in c for c in sandbox.app[CALLS])
    await client.get("/readyz")  # within 2 s: the same answer, no second upstream call
    assert sandbox.app[CALLS].count("GET /api/v2/user_fields") == 1


async def test_readyz_is_503_when_the_upstream_fails(client: Any, faults: Faults) -> None:
    faults.status = 500
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["status"] == "not ready"


async def test_readyz_is_503_with_refused_credentials(make_client: Any, config: Config) -> None:
    wrong = {**config.upstream.credentials, "api_token": Secret("revoked")}
    client = await make_client(tuned(config, upstream={"credentials": wrong}))
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["reason"] == "BadGateway"


async def test_readyz_is_503_when_the_upstream_is_down(make_client: Any, config: Config) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    client = await make_client(tuned(config, upstream={"base_url": closed}))
    assert (await client.get("/readyz")).status == 503
