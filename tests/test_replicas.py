"""Three gateway processes (`python -m gateway serve`), one Redis (a real redis-server), one
sandbox CRM: the replicas act as one gateway. A 429 one of them sees holds them all; racing
creates and updates spread over them land once, on a CRM without idempotency keys too (the
sandbox with its keys off, and a real RT5 under `make test-rt5`); a purge on one empties every
process's caches; an OAuth rotation over 3 replicas x 2 workers makes one refresh per expiry;
and Redis stopped mid-run costs no request, reads or writes. Without Redis, the workers of one
supervisor (`serve --workers 3`) do the same through their host: racing creates and updates
spread over them land once, on a CRM without idempotency keys too. Through either, a create
whose answer is late or lost is made once, and one whose outcome cannot be known yet is
refused by every process rather than made again: also when the process that sent it was
killed while the CRM was making it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio
from conftest import (
    API,
    AUTH,
    EF_AUTH,
    NO_RT5,
    RT5,
    TIMELINE,
    RedisServer,
    free_port,
    gateway,
    gateway_env,
    interaction,
    process_config,
    read_log,
    rt5_env,
    someone,
    until_up,
)

from gateway.sandbox.server import CALLS, CREDENTIALS, FAULTS, LOAD
from gateway.sandbox.store import Store

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


async def test_a_429_one_replica_receives_holds_them_all(
    watched_sandbox: Any, redis_server: RedisServer, processes: list[Any], logs_dir: Path
) -> None:
    app = watched_sandbox.app
    env = gateway_env(str(watched_sandbox.make_url("")).rstrip("/"), REDIS_URL=redis_server.url)
    ports = await start_fleet(processes, process_config(logs_dir), env, logs_dir)
    async with aiohttp.ClientSession() as http:
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


async def send(
    http: aiohttp.ClientSession, method: str, port: int, path: str, body: Any
) -> tuple[int, Any]:
    async with http.request(method, url(port, path), json=body, headers=AUTH) as resp:
        return resp.status, await resp.json()


def once_each(texts: list[str], ids: list[str]) -> dict[str, int]:
    """How often each interaction's marker is on the case (1 each, or it is wrong)."""
    joined = "\n".join(texts)
    return {i: joined.count(f"[khoros:twitter:{i}]") for i in ids}


async def race(
    http: aiohttp.ClientSession, ports: list[int], customer: str, rep: int
) -> tuple[str, dict[str, int]]:
    """30 identical creates, then 12 updates with overlapping interactions, spread over the
    replicas; all answered as a single gateway would. The case, and the interactions it must
    hold once each."""
    body = {"customerId": customer, "title": f"Claimed {rep} {uuid.uuid4().hex[:6]}",
            "interactions": [interaction(f"{rep}-0")]}  # fmt: skip
    made = await asyncio.gather(
        *(send(http, "POST", ports[n % 3], f"{API}/case", body) for n in range(30))
    )
    assert {s for s, _ in made} == {201} and len({m["id"] for _, m in made}) == 1
    case, ids = made[0][1]["id"], [f"{rep}-{n}" for n in range(6)]
    patches = [{"interactions": [interaction(ids[(k + d) % 6]) for d in (0, 1, 3)]}
               for k in range(12)]  # fmt: skip
    path = f"{API}/case/{case}"
    answers = await asyncio.gather(
        *(send(http, "PATCH", ports[k % 3], path, p) for k, p in enumerate(patches))
    )
    assert [s for s, _ in answers] == [200] * 12
    return case, dict.fromkeys(ids, 1)


async def test_racing_writes_through_the_replicas_land_once_without_idempotency_keys(
    watched_sandbox: Any,
    store: Store,
    redis_server: RedisServer,
    processes: list[Any],
    logs_dir: Path,
) -> None:
    store.idempotency_keys = False  # as on RT5: only the gateway can make a create happen once
    env = gateway_env(str(watched_sandbox.make_url("")).rstrip("/"), REDIS_URL=redis_server.url)
    ports = await start_fleet(processes, process_config(logs_dir), env, logs_dir)
    async with aiohttp.ClientSession() as http:
        for rep in range(4):
            before = len(store.tickets)
            case, once = await race(http, ports, "1001", rep)
            assert len(store.tickets) == before + 1, rep  # one ticket made
            texts = [c["body"] for c in store.comments[int(case)]]
            assert once_each(texts, list(once)) == once, rep
        # A customer too: 30 identical creates through the replicas make one user.
        users, body = len(store.users), someone()
        made = await asyncio.gather(
            *(send(http, "POST", ports[n % 3], f"{API}/customer", body) for n in range(30))
        )
        assert {s for s, _ in made} == {201} and len({m["id"] for _, m in made}) == 1
        assert len(store.users) == users + 1


async def test_racing_writes_through_the_replicas_land_once_on_rt5(
    redis_server: RedisServer, processes: list[Any], logs_dir: Path
) -> None:
    """The same on a real Request Tracker 5 (`make test-rt5`), which has no idempotency key."""
    env = rt5_env()
    if env is None:
        pytest.skip(NO_RT5)
    rt = RT5(env)
    config = process_config(logs_dir, base="config.rt5.example.yaml")
    env["REDIS_URL"] = redis_server.url
    ports = await start_fleet(processes, config, env, logs_dir)
    async with aiohttp.ClientSession() as http:
        code, customer = await send(http, "POST", ports[0], f"{API}/customer", someone())
        assert code == 201, customer
        made: list[str] = []
        for rep in range(3):
            case, once = await race(http, ports, customer["id"], rep)
            made.append(case)
            found = await rt.tickets(f"Requestor.id = {int(customer['id'])}")
            assert sorted(found) == sorted(made), rep  # one ticket for each 30 creates
            assert once_each(await rt.comments(case), list(once)) == once, rep

        # Redis killed mid-run: every write is still answered (each process on its own meanwhile).
        async def kill() -> tuple[int, None]:
            await asyncio.sleep(0.2)
            redis_server.stop()
            return 0, None

        writes = [
            kill(),
            *(send(http, "PATCH", ports[k % 3], f"{API}/case/{made[-1]}",
                   {"interactions": [interaction(f"down-{k}"), interaction(f"down-{k + 1}")]})
              for k in range(6)),
            *(send(http, "POST", ports[k % 3], f"{API}/case",
                   {"customerId": customer["id"], "title": f"Down {k}",
                    "interactions": [interaction(f"down-new-{k}")]})
              for k in range(6)),
        ]  # fmt: skip
        answers = [s for s, _ in await asyncio.gather(*writes)]
        assert answers == [0] + [200] * 6 + [201] * 6
        logged = [e["event"] for n in range(3) for e in read_log(logs_dir / f"replica-{n}.log")]
        assert "shared_state_unavailable" in logged  # the writes did meet the outage
        redis_server.start()
        await asyncio.sleep(1.5)  # past shared_state.retry_seconds: every process asks Redis again
        case, once = await race(http, ports, customer["id"], 3)
        assert once_each(await rt.comments(case), list(once)) == once


async def start_workers(
    processes: list[Any], config: Path, env: dict[str, str], logs: Path
) -> list[int]:
    """One supervisor of three workers without Redis; its port three times, as `race` takes the
    replicas' ports (the workers take connections from one listening socket in turn)."""
    port = free_port()
    args = ("serve", "--config", str(config), "--port", str(port), "--workers", "3")
    processes.append(gateway(*args, env={**env, "REDIS_URL": ""}, log=logs / "workers.log"))
    await until_up(port)
    return [port] * 3


def each_request_its_connection() -> aiohttp.ClientSession:
    """A new connection per request, so that every worker takes some of the racing requests."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))


async def test_racing_writes_through_the_workers_of_one_host_land_once_without_redis(
    watched_sandbox: Any, store: Store, processes: list[Any], logs_dir: Path
) -> None:
    store.idempotency_keys = False  # only the gateway can make a create happen once
    watched_sandbox.app[FAULTS].delay = 0.02  # a CRM that takes its time: the writes overlap
    env = gateway_env(str(watched_sandbox.make_url("")).rstrip("/"))
    ports = await start_workers(processes, process_config(logs_dir), env, logs_dir)
    async with each_request_its_connection() as http:
        for rep in range(3):
            before = len(store.tickets)
            case, once = await race(http, ports, "1001", rep)
            assert len(store.tickets) == before + 1, rep  # one ticket made
            texts = [c["body"] for c in store.comments[int(case)]]
            assert once_each(texts, list(once)) == once, rep
        users, body = len(store.users), someone()
        made = await asyncio.gather(*(send(http, "POST", ports[0], f"{API}/customer", body)
                                      for _ in range(30)))  # fmt: skip
        assert {s for s, _ in made} == {201} and len({m["id"] for _, m in made}) == 1
        assert len(store.users) == users + 1
    logged = read_log(logs_dir / "workers.log")
    assert len({e["pid"] for e in logged if e["event"] == "started"}) == 3
    assert not [e for e in logged if e["event"].startswith("host_state")]  # the host's files


async def test_racing_writes_through_the_workers_of_one_host_land_once_on_rt5(
    processes: list[Any], logs_dir: Path
) -> None:
    """The same on a real Request Tracker 5 (`make test-rt5`), which has no idempotency key."""
    env = rt5_env()
    if env is None:
        pytest.skip(NO_RT5)
    rt = RT5(env)
    config = process_config(logs_dir, base="config.rt5.example.yaml")
    ports = await start_workers(processes, config, env, logs_dir)
    async with each_request_its_connection() as http:
        code, customer = await send(http, "POST", ports[0], f"{API}/customer", someone())
        assert code == 201, customer
        made: list[str] = []
        for rep in range(3):
            case, once = await race(http, ports, customer["id"], rep)
            made.append(case)
            found = await rt.tickets(f"Requestor.id = {int(customer['id'])}")
            assert sorted(found) == sorted(made), rep  # one ticket for each 30 creates
            assert once_each(await rt.comments(case), list(once)) == once, rep


SHORT = {"deadlines": {"default_seconds": 1.0, "share": 1.0},
         "upstream": {"attempt_timeout_seconds": 0.6}}  # fmt: skip


@pytest.fixture
async def short_processes(
    request: pytest.FixtureRequest,
    watched_sandbox: Any,
    redis_binary: str,
    tmp_path: Path,
    processes: list[Any],
    logs_dir: Path,
) -> AsyncIterator[list[int]]:
    """Three gateway processes with a short budget (1 s) and attempt cap (0.6 s), that
    share their locks and memory of creates through Redis (`shared` "redis": three replicas)
    or through their host (`shared` "host": three workers of one supervisor, no Redis); the
    test's parameter `shared` says which. Their ports."""
    shared = request.node.callspec.params["shared"]
    env = gateway_env(str(watched_sandbox.make_url("")).rstrip("/"))
    config = process_config(logs_dir, **SHORT)
    if shared == "host":
        yield await start_workers(processes, config, env, logs_dir)
        return
    server = RedisServer(redis_binary, tmp_path / "redis")
    server.start()
    try:
        yield await start_fleet(processes, config, {**env, "REDIS_URL": server.url}, logs_dir)
    finally:
        server.stop()


def nameless() -> dict[str, str]:
    """A customer with no unique value: only the gateway can tell a repeat from a second one."""
    return {"name": f"Plain {uuid.uuid4().hex[:8]}", "notes": "Only a name and notes."}


def holding(store: Store, body: dict[str, str]) -> list[int]:
    return [u["id"] for u in store.users.values() if u["name"] == body["name"]]


async def create_everywhere(
    http: aiohttp.ClientSession, ports: list[int], body: dict[str, str]
) -> list[tuple[int, Any]]:
    return await asyncio.gather(
        *(send(http, "POST", port, f"{API}/customer", body) for port in ports)
    )


async def made_once(
    http: aiohttp.ClientSession, ports: list[int], sandbox: Any, store: Store, lost: str
) -> None:
    """Three racing creates of a customer with no unique value, the first applied at once and
    its answer late (1.3 s: past the callers' budget of 1 s and one attempt's cap of 0.6 s,
    inside the grace), dropped (`reset`) or replaced by a 500. The racing ones wait for it and
    make nothing; every caller, then or on the repeat, gets the one customer it made."""
    faults = sandbox.app[FAULTS]
    faults.method, faults.path_prefix = "POST", "/api/v2/users"
    faults.delay_after = 1.3 if lost == "late" else 0.0
    faults.reset_after, faults.status_after = lost == "reset", 500 if lost == "500" else None
    posts, body = len(posted(sandbox)), nameless()
    first = await create_everywhere(http, ports, body)
    # Late: every caller's budget ends first (504), and the create runs on. Lost: the create
    # finds what it made, and the racing ones get it from the fleet's memory.
    assert [s for s, _ in first] == ([504] if lost == "late" else [201]) * 3, (lost, first)
    while not holding(store, body) or sandbox.app[LOAD].now:
        await asyncio.sleep(0.02)
    again = await create_everywhere(http, ports, body)  # (waiting, if need be, for the lock)
    assert len(posted(sandbox)) == posts + 1 and len(holding(store, body)) == 1, lost
    assert [s for s, _ in again] == [201] * 3, (lost, again)
    answered = {m["id"] for s, m in [*first, *again] if s == 201}
    assert answered == {str(u) for u in holding(store, body)}, lost


async def refused_while_unseen(
    http: aiohttp.ClientSession, ports: list[int], sandbox: Any, store: Store
) -> None:
    """The first of three racing creates is applied and its connection dropped, and the CRM's
    search does not show new users yet (Zendesk's lags). No process can tell whether it was
    made: none makes it again, each says so (502 for the create that lost its answer, 503
    `CreatePending` for the others and the repeats), and once the search shows it every repeat
    gets it."""
    faults = sandbox.app[FAULTS]
    faults.method, faults.path_prefix, faults.reset_after = "POST", "/api/v2/users", True
    faults.delay_after, faults.status_after = 0.0, None
    later = [0.0]
    store.clock = lambda: time.monotonic() + later[0]
    store.index_lag = 600.0
    posts, body = len(posted(sandbox)), nameless()
    first = await create_everywhere(http, ports, body)
    # The create that lost its answer is a 502; a racing one through the same process shares
    # its outcome, one through another process waits for it and is refused.
    assert 502 in [s for s, _ in first] and {s for s, _ in first} <= {502, 503}, first
    assert {m["error"] for s, m in first if s == 503} <= {"CreatePending"}
    assert [s for s, _ in await create_everywhere(http, ports, body)] == [503] * 3
    later[0] = 700.0  # the search shows it now
    again = await create_everywhere(http, ports, body)
    assert len(posted(sandbox)) == posts + 1 and len(holding(store, body)) == 1
    assert [s for s, _ in again] == [201] * 3, again
    assert {m["id"] for _, m in again} == {str(u) for u in holding(store, body)}


def posted(sandbox: Any) -> list[str]:
    return [c for c in sandbox.app[CALLS] if c.startswith("POST")]


@pytest.mark.parametrize("shared", ["redis", "host"])
async def test_a_create_whose_answer_is_late_or_lost_is_made_once_through_every_process(
    shared: str, watched_sandbox: Any, store: Store, short_processes: list[int]
) -> None:
    """Customers with no unique value, created through three processes at once, whose first
    create's answer is late, dropped, or a 500 (`made_once`), and then one whose outcome no
    process can know yet (`refused_while_unseen`): each made once, through replicas sharing a
    Redis and through the workers of one host."""
    async with each_request_its_connection() as http:
        for lost in ("late", "reset", "500"):
            await made_once(http, short_processes, watched_sandbox, store, lost)
        await refused_while_unseen(http, short_processes, watched_sandbox, store)


def serving_pids(shared: str, processes: list[Any], logs: Path) -> list[int]:
    """The processes that serve: the three replicas, or the supervisor's workers now."""
    if shared == "redis":
        return [p.pid for p in processes]
    started = [e["pid"] for e in read_log(logs / "workers.log") if e["event"] == "started"]
    return started[-3:]


@pytest.mark.parametrize("shared", ["redis", "host"])
async def test_a_process_killed_while_its_create_is_in_the_crm_leaves_no_second_record(
    shared: str,
    watched_sandbox: Any,
    store: Store,
    short_processes: list[int],
    processes: list[Any],
    logs_dir: Path,
) -> None:
    """A create of a customer with no unique value is in the CRM (which makes it 6 s after it
    came) when its gateway process is SIGKILLed: one replica of three sharing a Redis, or
    every worker of a host (the supervisor starts new ones). Its outcome was remembered before
    the call went out, so the repeats through the others look for it: each waits for the dead
    process's lock (504) or is refused (503 CreatePending) until the customer shows, and then
    gets it. Nothing makes a second one."""
    faults = watched_sandbox.app[FAULTS]
    faults.method, faults.path_prefix, faults.times, faults.delay = "POST", "/api/v2/users", 1, 6.0
    body = {"name": f"Fleet Crash {uuid.uuid4().hex[:6]}", "phone": "+41791110000"}
    ports = short_processes
    async with each_request_its_connection() as http:
        first = asyncio.ensure_future(send(http, "POST", ports[0], f"{API}/customer", body))
        while "POST /api/v2/users" not in posted(watched_sandbox):
            await asyncio.sleep(0.01)  # the create is in the CRM
        victims = serving_pids(shared, processes, logs_dir)
        killed = victims[:1] if shared == "redis" else victims
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(aiohttp.ClientError):
            await first  # its caller gets no answer
        others = ports[1:] if shared == "redis" else ports[:1]
        seen: list[int] = []
        while not holding(store, body) or watched_sandbox.app[LOAD].now:
            for port in others:
                code, answer = await send(http, "POST", port, f"{API}/customer", body)
                seen.append(code)
                if code == 201:  # the CRM made it while this repeat looked: it is that one
                    assert [str(u) for u in holding(store, body)] == [answer["id"]], answer
                    continue
                assert code in (503, 504), (seen, answer)
                assert code == 504 or answer["error"] == "CreatePending", answer
            await asyncio.sleep(0.2)
        assert 503 in seen, seen  # refused once the dead process's lock was gone
        again = [await send(http, "POST", port, f"{API}/customer", body) for port in others]
    assert len(holding(store, body)) == 1, holding(store, body)
    assert {(code, answer["id"]) for code, answer in again} == {(201, str(holding(store, body)[0]))}
    assert posted(watched_sandbox).count("POST /api/v2/users") == 1


async def test_a_purge_reaches_every_replica_and_redis_trouble_costs_no_request(
    watched_sandbox: Any,
    store: Any,
    redis_server: RedisServer,
    processes: list[Any],
    logs_dir: Path,
) -> None:
    # A thousand lookups and a hundred updates of one ticket in a few seconds: past Zendesk's
    # limits, which are not what this test is about (the rate-limit tests are).
    store.limits.account_per_minute = store.limits.ticket_updates_per_10_minutes = 0
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

        # Redis goes away mid-run, and comes back: every request is answered, writes too.
        first = {"customerId": "1001", "title": "Outage", "interactions": [interaction("o")]}
        async with http.post(url(ports[0], f"{API}/case"), json=first, headers=AUTH) as resp:
            case = (await resp.json())["id"]
        statuses: list[int] = []
        writes: list[int] = []

        async def load(n: int) -> None:
            end = time.monotonic() + 4.0
            while time.monotonic() < end:
                path = f"{API}/customer/1001" if n % 2 else "/label"
                statuses.append(await status(http, "GET", url(ports[n % 3], path), headers=BOTH))
                await asyncio.sleep(0.01)

        async def write(n: int) -> None:
            end, k = time.monotonic() + 4.0, 0
            while time.monotonic() < end:
                if n % 2:  # identical creates through every replica, moments apart
                    method, path = "POST", f"{API}/case"
                    body: dict[str, Any] = {**first, "title": f"Outage {k}"}
                else:  # overlapping interactions on one case
                    method, path = "PATCH", f"{API}/case/{case}"
                    body = {"interactions": [interaction(f"o{k}"), interaction(f"o{k + 1}")]}
                address = url(ports[n % 3], path)
                writes.append(await status(http, method, address, json=body, headers=AUTH))
                k += 1

        async def outage() -> None:
            await asyncio.sleep(0.8)
            redis_server.stop()
            await asyncio.sleep(1.5)
            redis_server.start()

        await asyncio.gather(outage(), *(load(n) for n in range(6)), *(write(n) for n in range(6)))
        assert len(statuses) > 60 and set(statuses) == {200}
        assert len(writes) > 30 and set(writes) == {200, 201}
        made = Counter(t["raw_subject"] for t in store.tickets.values())
        assert {n for title, n in made.items() if title.startswith("Outage ")} == {1}

        # It said so, loudly and in a metric, and reconnected by itself.
        async def reached() -> int:
            async with http.post(url(ports[1], "/admin/cache/purge"), headers=ADMIN) as resp:
                return int((await resp.json())["processes"])

        end = time.monotonic() + 20  # each reconnects by itself; a loaded machine takes its time
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


async def test_a_redis_stall_leaves_no_write_lock_behind(
    watched_sandbox: Any, redis_server: RedisServer, processes: list[Any], logs_dir: Path
) -> None:
    """Redis stopped (SIGSTOP) runs what was sent meanwhile when it goes on: the write lock a
    replica asked for and gave up on must not be taken then, or the next write of that case
    through another replica waits for a lock nobody holds, and times out."""
    env = gateway_env(str(watched_sandbox.make_url("")).rstrip("/"), REDIS_URL=redis_server.url)
    ports = await start_fleet(processes, process_config(logs_dir), env, logs_dir)
    path = f"{API}/case/5001"
    async with aiohttp.ClientSession() as http:
        for n, port in enumerate(ports):  # every replica has its connections to Redis
            body = {"interactions": [interaction(f"warm-{n}")]}
            assert (await send(http, "PATCH", port, path, body))[0] == 200
        redis_server.pause()
        try:  # one replica writes through the stall: its own lock, since Redis does not answer
            body = {"interactions": [interaction("stalled")]}
            assert (await send(http, "PATCH", ports[0], path, body))[0] == 200
        finally:
            redis_server.resume()
        started = time.monotonic()
        body = {"interactions": [interaction("after")]}
        assert (await send(http, "PATCH", ports[1], path, body))[0] == 200
        assert time.monotonic() - started < 2.0  # no lease left to wait out (it lasts ~8 s)


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
