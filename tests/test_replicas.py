"""Three gateway processes (`python -m gateway serve`), one Redis (a real redis-server), one
sandbox CRM: the replicas act as one gateway. Racing requests spread over them, a 429 one of
them sees holds them all, a purge on one empties every process's caches, an OAuth rotation over
3 replicas x 2 workers makes one refresh per expiry, and Redis stopped mid-run costs no
request."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio
from conftest import (
    API,
    AUTH,
    EF_AUTH,
    TIMELINE,
    RedisServer,
    free_port,
    gateway,
    gateway_env,
    interaction,
    process_config,
    read_log,
    until_up,
)

from gateway.sandbox.server import CREDENTIALS, FAULTS, STORE

ADMIN = {"Authorization": "Bearer admin-secret"}
OAUTH_ENV = {
    "ZENDESK_EMAIL": "",
    "ZENDESK_API_TOKEN": "",
    "ZENDESK_OAUTH_CLIENT_ID": "sandbox-client",
    "ZENDESK_OAUTH_CLIENT_SECRET": "sandbox-secret",
    "ZENDESK_OAUTH_REFRESH_TOKEN": "sandbox-refresh-token",
}
OAUTH_CONFIG = {
    "client_id": "${ZENDESK_OAUTH_CLIENT_ID:-}",
    "client_secret": "${ZENDESK_OAUTH_CLIENT_SECRET:-}",
    "refresh_token": "${ZENDESK_OAUTH_REFRESH_TOKEN:-}",
    "refresh_before_seconds": 0.5,
}
TOKEN_TTL = 2.0  # the sandbox's tokens: a rotation every 1.5 s (refreshed 0.5 s before expiry)

BOTH = {**AUTH, **EF_AUTH}  # Khoros's key and Hybrid Chat's: either path answers


@pytest.fixture
def logs_dir(tmp_path: Path) -> Iterator[Path]:
    """Where the gateway processes write; every line joins the secret scan afterwards."""
    directory = tmp_path / "logs"
    directory.mkdir()
    yield directory
    for log in directory.glob("*.log"):
        read_log(log)


async def start_fleet(
    processes: list[Any], config: Path, env: dict[str, str], logs: Path, workers: int = 1
) -> list[int]:
    ports = [free_port() for _ in range(3)]
    for n, port in enumerate(ports):
        more = ["--workers", str(workers)] if workers > 1 else []
        args = ("serve", "--config", str(config), "--port", str(port), *more)
        processes.append(gateway(*args, env=env, log=logs / f"replica-{n}.log"))
    await asyncio.gather(*(until_up(port) for port in ports))
    return ports


def url(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


async def status(http: aiohttp.ClientSession, method: str, address: str, **more: Any) -> int:
    async with http.request(method, address, **more) as resp:
        await resp.read()
        return resp.status


async def test_racing_requests_and_a_429_are_one_gateways(
    watched_sandbox: Any, redis_server: RedisServer, processes: list[Any], logs_dir: Path
) -> None:
    app = watched_sandbox.app
    env = gateway_env(str(watched_sandbox.make_url("")).rstrip("/"), REDIS_URL=redis_server.url)
    ports = await start_fleet(processes, process_config(logs_dir), env, logs_dir)
    async with aiohttp.ClientSession() as http:
        # Identical creates spread over the replicas make one ticket.
        before = len(app[STORE].tickets)
        body = {"customerId": "1001", "title": "Racing", "interactions": [interaction("77")]}

        async def create(port: int) -> tuple[int, str]:
            async with http.post(url(port, f"{API}/case"), json=body, headers=AUTH) as resp:
                return resp.status, (await resp.json())["id"]

        made = await asyncio.gather(*(create(ports[n % 3]) for n in range(30)))
        assert {s for s, _ in made} == {201} and len({i for _, i in made}) == 1
        assert len(app[STORE].tickets) == before + 1

        # A 429 (account-wide, Retry-After: 2) that one replica receives holds all three.
        faults = app[FAULTS]
        faults.status, faults.retry_after, faults.method, faults.times = 429, "2", "GET", 1
        timeline = app[TIMELINE]

        def find(port: int, customer: int) -> Any:
            return status(http, "GET", url(port, f"{API}/customer/{customer}"), headers=AUTH)

        first = asyncio.create_task(find(ports[0], 1001))
        async with redis.asyncio.Redis.from_url(redis_server.url) as shared:
            end = time.monotonic() + 5
            while not await shared.keys("crm-gateway:*:hold:account"):  # the fleet learned it
                assert time.monotonic() < end, "the 429 was not shared"
                await asyncio.sleep(0.01)
        learned = time.time()
        others = [find(ports[1 + n % 2], 1001 + n % 3) for n in range(10)]
        assert await asyncio.gather(first, *others) == [200] * 11
        limited = [end for _, end, _, _, s in timeline if s == 429]
        assert len(limited) == 1
        window = (learned, limited[0] + 1.9)
        inside = [(m, p) for start, _, m, p, _ in timeline if window[0] < start < window[1]]
        assert inside == []  # nobody called the CRM inside the Retry-After
        assert len([s for s, *_ in timeline if s >= window[1]]) >= 11  # all of them after it


async def test_a_purge_reaches_every_replica_and_redis_trouble_costs_no_request(
    watched_sandbox: Any,
    store: Any,
    redis_server: RedisServer,
    processes: list[Any],
    logs_dir: Path,
) -> None:
    # A thousand lookups in a few seconds: past Zendesk's account limit, which is not what
    # this test is about (the rate-limit tests are).
    store.limits.account_per_minute = 0
    env = gateway_env(
        str(watched_sandbox.make_url("")).rstrip("/"),
        REDIS_URL=redis_server.url,
        GATEWAY_ADMIN_KEY="admin-secret",
    )
    ports = await start_fleet(processes, process_config(logs_dir), env, logs_dir)
    timeline = watched_sandbox.app[TIMELINE]

    def label_loads() -> int:
        return sum(p == "/api/v2/user_fields" for *_, p, _ in timeline)

    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            for port in ports:
                assert await status(http, "GET", url(port, "/label"), headers=EF_AUTH) == 200
        assert label_loads() == 3  # one load per replica, then cached
        async with http.post(url(ports[0], "/admin/cache/purge"), headers=ADMIN) as resp:
            assert resp.status == 200 and (await resp.json())["processes"] == 3
        for port in ports:
            assert await status(http, "GET", url(port, "/label"), headers=EF_AUTH) == 200
        assert label_loads() == 6  # each replica loaded again

        # Redis goes away mid-run, and comes back: every request is answered.
        statuses: list[int] = []

        async def load(n: int) -> None:
            end = time.monotonic() + 4.0
            while time.monotonic() < end:
                path = f"{API}/customer/1001" if n % 2 else "/label"
                statuses.append(await status(http, "GET", url(ports[n % 3], path), headers=BOTH))
                await asyncio.sleep(0.01)

        async def outage() -> None:
            await asyncio.sleep(0.8)
            redis_server.stop()
            await asyncio.sleep(1.5)
            redis_server.start()

        await asyncio.gather(outage(), *(load(n) for n in range(6)))
        assert len(statuses) > 60 and set(statuses) == {200}

        # It said so, loudly and in a metric, and reconnected by itself.
        async def reached() -> int:
            async with http.post(url(ports[1], "/admin/cache/purge"), headers=ADMIN) as resp:
                return int((await resp.json())["processes"])

        end = time.monotonic() + 10
        while await reached() != 3:
            assert time.monotonic() < end, "the replicas did not all come back to Redis"
            await asyncio.sleep(0.2)
        for port in ports:
            async with http.get(url(port, "/metrics")) as resp:
                text = await resp.text()
            assert "crm_gateway_shared_state_up 1.0" in text
            errors = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("crm_gateway_shared_state_errors_total{")
            ]
            assert sum(errors) >= 1
    for n in range(3):
        seen = [e for e in read_log(logs_dir / f"replica-{n}.log") if "shared_state" in e["event"]]
        assert ("shared_state_unavailable", "error") in {(e["event"], e["level"]) for e in seen}
        assert seen[-1]["event"] == "shared_state_restored"


async def test_an_oauth_rotation_over_three_replicas_of_two_workers(
    watched_sandbox: Any, redis_server: RedisServer, processes: list[Any], logs_dir: Path
) -> None:
    creds = watched_sandbox.app[CREDENTIALS]
    creds.token_ttl = TOKEN_TTL
    env = gateway_env(
        str(watched_sandbox.make_url("")).rstrip("/"),
        REDIS_URL=redis_server.url,
        GATEWAY_ADMIN_KEY="admin-secret",
        **OAUTH_ENV,
    )
    config = process_config(logs_dir, upstream={"oauth": OAUTH_CONFIG})
    ports = await start_fleet(processes, config, env, logs_dir, workers=2)
    timeline = watched_sandbox.app[TIMELINE]
    async with aiohttp.ClientSession() as http:
        started = time.time()

        async def client(n: int) -> list[int]:
            got = []
            for k in range(20):
                path = f"{API}/customer/100{1 + k % 3}"
                got.append(await status(http, "GET", url(ports[(n + k) % 3], path), headers=BOTH))
                await asyncio.sleep(0.22)
            return got

        answers = [s for got in await asyncio.gather(*(client(n) for n in range(10))) for s in got]
        elapsed = time.time() - started
        assert len(answers) == 200 and set(answers) == {200}
        grants = [(start, s) for start, _, m, p, s in timeline if p == "/oauth/tokens"]
        assert {s for _, s in grants} == {200}  # never a spent refresh token
        assert len(grants) >= 3 and elapsed > 3 * (TOKEN_TTL - 0.5)  # rotations happened
        gaps = [b - a for (a, _), (b, _) in itertools.pairwise(grants)]
        assert min(gaps) > (TOKEN_TTL - 0.5) / 2  # one refresh per expiry, fleet-wide
        async with http.post(url(ports[2], "/admin/cache/purge"), headers=ADMIN) as resp:
            assert (await resp.json())["processes"] == 6  # every worker of every replica
