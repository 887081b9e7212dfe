"""Serving on several processes: two workers share a port (bound once, by the supervisor) and
their metrics, OAuth tokens and cache purges, a second instance on the port fails to start, and
SIGTERM lets requests in flight finish before everything stops cleanly."""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import (
    API_KEY,
    AUTH,
    EF_AUTH,
    TIMELINE,
    events,
    free_port,
    gateway,
    gateway_env,
    process_config,
    read_log,
    until_up,
    wait_for,
)

from gateway.sandbox.server import CALLS, CREDENTIALS, FAULTS

ADMIN = {"Authorization": "Bearer admin-secret"}


def get(url: str, key: str = "test-key-1") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": key})
    with urllib.request.urlopen(request, timeout=30) as r:
        return r.status, r.read()


def test_two_workers_serve_share_metrics_and_stop_cleanly(processes: Any) -> None:
    sandbox_port, port = free_port(), free_port()
    processes.append(gateway("sandbox", "--port", str(sandbox_port), "--delay", "0.05"))
    env = gateway_env(f"http://127.0.0.1:{sandbox_port}")
    supervisor = gateway(
        "serve", "--config", "config.example.yaml", "--port", str(port), "--workers", "2", env=env
    )
    processes.append(supervisor)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz")
    for _ in range(12):
        assert get(f"{base}/api/v1/customer/1001")[0] == 200
    text = wait_for(f"{base}/metrics").decode()
    served = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('crm_gateway_requests_total{operation="find_customer",status="200"}')
    ]
    assert served == [12.0]  # one sum over both workers

    # A request in flight when SIGTERM arrives still gets its answer.
    result: dict[str, Any] = {}
    slow = threading.Thread(
        target=lambda: result.update(r=get(f"{base}/api/v1/customer/1002/cases"))
    )
    slow.start()
    wait_for(f"{base}/healthz")
    supervisor.send_signal(signal.SIGTERM)
    slow.join(30)
    assert result["r"][0] == 200
    assert supervisor.wait(30) == 0
    processes.remove(supervisor)
    out = supervisor.stdout.read().decode() if supervisor.stdout else ""
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    started = {e["pid"] for e in events if e["event"] == "started"}
    stopped = {e["pid"] for e in events if e["event"] == "stopped"}
    assert len(started) == 2 and stopped == started
    assert events[-1]["event"] == "supervisor_stopped" and events[-1]["code"] == 0
    assert all(e["loop"] == "uvloop" for e in events if e["event"] == "started")


def test_a_dead_worker_is_replaced(processes: Any) -> None:
    sandbox_port, port = free_port(), free_port()
    processes.append(gateway("sandbox", "--port", str(sandbox_port)))
    env = gateway_env(f"http://127.0.0.1:{sandbox_port}")
    supervisor = gateway(
        "serve", "--config", "config.example.yaml", "--port", str(port), "--workers", "2", env=env
    )
    processes.append(supervisor)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    workers = subprocess.run(
        ["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(workers) == 2
    subprocess.run(["kill", "-KILL", workers[0]], check=True)
    # Connections queued on the killed process are lost with it; new ones go to live workers.
    for _ in range(50):  # the supervisor looks every 0.2 s
        now = subprocess.run(
            ["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True
        ).stdout.split()
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.1)
    assert len(now) == 2 and workers[0] not in now and workers[1] in now
    wait_for(f"http://127.0.0.1:{port}/healthz")
    time.sleep(0.5)  # the new worker's own start-up
    for _ in range(20):
        assert get(f"http://127.0.0.1:{port}/api/v1/customer/1001")[0] == 200


# -- one host without Redis: the workers still act as one gateway ------------------------------


def test_a_second_instance_on_a_used_port_exits_non_zero(processes: Any) -> None:
    port = free_port()
    env = gateway_env("http://127.0.0.1:9")  # never called: nothing is requested
    args = ("serve", "--config", "config.example.yaml", "--port", str(port))
    first = gateway(*args, "--workers", "2", env=env, quiet=True)
    processes.append(first)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    for more in (("--workers", "2"), ()):
        second = gateway(*args, *more, env=env)
        processes.append(second)
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out.decode()
    assert first.poll() is None  # the first one serves on, alone
    wait_for(f"http://127.0.0.1:{port}/healthz")


async def test_two_workers_share_oauth_rotations_and_purges_without_redis(
    watched_sandbox: Any, processes: Any, tmp_path: Any
) -> None:
    """Tokens rotate every 1.5 s; the workers share them through a locked file (none is
    configured: the supervisor's own directory), and a purge reaches both through the
    supervisor."""
    creds = watched_sandbox.app[CREDENTIALS]
    creds.token_ttl = 2.0
    env = gateway_env(
        str(watched_sandbox.make_url("")).rstrip("/"),
        GATEWAY_ADMIN_KEY="admin-secret",
        ZENDESK_EMAIL="",
        ZENDESK_API_TOKEN="",
        ZENDESK_OAUTH_CLIENT_ID="sandbox-client",
        ZENDESK_OAUTH_CLIENT_SECRET="sandbox-secret",
        ZENDESK_OAUTH_REFRESH_TOKEN="sandbox-refresh-token",
        REDIS_URL="",
    )
    oauth = {
        "client_id": "${ZENDESK_OAUTH_CLIENT_ID:-}",
        "client_secret": "${ZENDESK_OAUTH_CLIENT_SECRET:-}",
        "refresh_token": "${ZENDESK_OAUTH_REFRESH_TOKEN:-}",
        "refresh_before_seconds": 0.5,
    }
    config = process_config(tmp_path, upstream={"oauth": oauth})
    port = free_port()
    log = tmp_path / "gateway.log"
    args = ("serve", "--config", str(config), "--port", str(port), "--workers", "2")
    processes.append(gateway(*args, env=env, log=log))
    await until_up(port)
    timeline = watched_sandbox.app[TIMELINE]
    base = f"http://127.0.0.1:{port}"
    # A new connection for each request, so that both workers take some.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:

        async def get(path: str, headers: dict[str, str] | None = None) -> int:
            async with http.get(base + path, headers=headers or {}) as resp:
                await resp.read()
                return resp.status

        async def client(n: int) -> list[int]:
            got = []
            for k in range(12):
                got.append(await get(f"/api/v1/customer/100{1 + (n + k) % 3}", AUTH))
                await asyncio.sleep(0.3)
            return got

        answers = [s for got in await asyncio.gather(*(client(n) for n in range(8))) for s in got]
        assert len(answers) == 96 and set(answers) == {200}
        grants = [(start, s) for start, _, _, p, s in timeline if p == "/oauth/tokens"]
        assert len(grants) >= 2 and {s for _, s in grants} == {200}  # no spent refresh token
        assert min(b - a for (a, _), (b, _) in itertools.pairwise(grants)) > 0.75  # per expiry

        before = sum(p == "/api/v2/user_fields" for *_, p, _ in timeline)  # field definitions

        def label_loads() -> int:
            return sum(p == "/api/v2/user_fields" for *_, p, _ in timeline) - before

        async def until_loads(count: int) -> None:
            for _ in range(100):  # both workers must have answered one since
                if label_loads() >= count:
                    return
                await asyncio.gather(*(get("/label", EF_AUTH) for _ in range(4)))
            raise AssertionError(f"{label_loads()} loads of the labels, not {count}")

        await until_loads(2)  # each worker loaded the labels once
        async with http.post(base + "/admin/cache/purge", headers=ADMIN) as resp:
            assert (await resp.json())["processes"] == 2
        await until_loads(4)  # and each loaded them again after the purge
        await asyncio.gather(*(get("/label", EF_AUTH) for _ in range(20)))
        assert label_loads() == 4
    read_log(log)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_turns_readyz_503_while_requests_are_still_answered(
    watched_sandbox: Any, processes: Any, tmp_path: Any, workers: str
) -> None:
    """SIGTERM: /readyz answers 503 at once; for the drain delay new requests are still served,
    a request in flight completes, then the process stops listening and exits 0 (with workers:
    each of them, and the supervisor after them)."""
    faults = watched_sandbox.app[FAULTS]
    faults.path_prefix, faults.delay = "/api/v2/users/1001/tickets", 2.0  # that customer's cases
    env = gateway_env(str(watched_sandbox.make_url("")).rstrip("/"))
    config = process_config(tmp_path, server={"drain_delay_seconds": 3})
    port, log = free_port(), tmp_path / "gateway.log"
    args = ("serve", "--config", str(config), "--port", str(port), "--workers", workers)
    proc = gateway(*args, env=env, log=log)
    processes.append(proc)
    await until_up(port)
    while [e["event"] for e in events(log.read_text())].count("started") < int(workers):
        await asyncio.sleep(0.05)  # every worker up: SIGTERM before its handlers would kill it
    base = f"http://127.0.0.1:{port}"
    # A connection per request, as a load balancer's probes and new callers would open.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:

        async def get(path: str) -> tuple[int, Any]:
            async with http.get(base + path, headers=AUTH) as resp:
                return resp.status, await resp.json()

        assert (await get("/readyz"))[0] == 200
        in_flight = asyncio.create_task(get("/api/v1/customer/1001/cases"))
        while not any(c.startswith("GET /api/v2/users/1001/tickets") for c in
                      watched_sandbox.app[CALLS]):  # fmt: skip
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        for _ in range(100):  # the signal is handled between two requests
            status, body = await get("/readyz")
            if status == 503:
                break
            await asyncio.sleep(0.02)
        assert (status, body["reason"], body["state"]) == (503, "Draining", "draining")
        # A new connection, answered: the process still listens, though unready.
        assert (await get("/api/v1/customer/1002"))[0] == 200
        status, cases = await in_flight
        assert status == 200 and cases
    assert await asyncio.to_thread(proc.wait, 30) == 0
    processes.remove(proc)
    lines = [e["event"] for e in read_log(log)]
    assert lines.count("draining") == lines.count("stopped") == int(workers)
    assert lines.index("draining") < lines.index("stopped")


# -- signals from the first moment: a stop during start-up is a clean stop ------------------------


def read_by_a_process(pipe: Path, timeout: float = 30) -> int:
    """A descriptor to write the named pipe, once a process has opened it to read (reading its
    config, here); fails rather than hangs when none does."""
    end = time.monotonic() + timeout
    while True:
        try:
            return os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > end:
                raise
            time.sleep(0.01)


def keys_in_a_pipe(tmp_path: Path) -> tuple[Path, Path]:
    """A config whose API keys come from a secret file that is a named pipe: a process reading
    it waits there until the test writes the keys."""
    pipe = tmp_path / "keys"
    os.mkfifo(pipe)
    return process_config(tmp_path, auth={"api_keys": f"${{file:{pipe}}}"}), pipe


def write(fd: int, text: str) -> None:
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_sigterm_during_start_up_is_a_clean_exit(
    processes: Any, tmp_path: Path, workers: str
) -> None:
    """A SIGTERM in the first half second (imports, the config, the set-up) ended the process
    with 143. Here it comes while the process reads its config: the process stops once it can,
    exit 0, and a supervisor starts no worker."""
    config, pipe = keys_in_a_pipe(tmp_path)
    port, log = free_port(), tmp_path / "gateway.log"
    proc = gateway("serve", "--config", str(config), "--port", str(port), "--workers", workers,
                   env=gateway_env("http://127.0.0.1:9"), log=log)  # fmt: skip
    processes.append(proc)
    reading = read_by_a_process(pipe)
    proc.send_signal(signal.SIGTERM)
    write(reading, API_KEY)
    assert proc.wait(30) == 0
    said = [e["event"] for e in read_log(log)]
    if workers == "1":
        assert said[-1] == "stopped"
    else:
        assert said == ["supervisor_stopped"]


def test_workers_stopped_while_they_start_exit_cleanly(processes: Any, tmp_path: Path) -> None:
    """A worker SIGTERMed before it installed its handlers died silently. The supervisor starts
    them with the signals held back; each acts on it once it can, and exits 0."""
    port, log = free_port(), tmp_path / "gateway.log"
    env = gateway_env("http://127.0.0.1:9")
    supervisor = gateway("serve", "--config", "config.example.yaml", "--port", str(port),
                         "--workers", "2", env=env, log=log)  # fmt: skip
    processes.append(supervisor)
    for _ in range(300):
        started = [e for e in read_log(log) if e["event"] == "supervisor_started"]
        if started:
            break
        time.sleep(0.01)
    supervisor.send_signal(signal.SIGTERM)  # the workers are still importing: 0.3 s at least
    assert supervisor.wait(30) == 0
    lines = read_log(log)
    stopped = {e["pid"] for e in lines if e["event"] == "stopped"}
    assert stopped == set(started[0]["pids"])
    assert "worker_exited" not in [e["event"] for e in lines]


def test_a_sighup_during_start_up_reloads_once_it_serves(processes: Any, tmp_path: Path) -> None:
    """SIGHUP's default ended a process that had not installed its handler yet (a `systemctl
    reload` as it starts, a worker restarted by its supervisor)."""
    config, pipe = keys_in_a_pipe(tmp_path)
    port, log = free_port(), tmp_path / "gateway.log"
    proc = gateway("serve", "--config", str(config), "--port", str(port),
                   env=gateway_env("http://127.0.0.1:9"), log=log)  # fmt: skip
    processes.append(proc)
    reading = read_by_a_process(pipe)
    proc.send_signal(signal.SIGHUP)
    write(reading, API_KEY)
    wait_for(f"http://127.0.0.1:{port}/healthz")  # served: it has read the pipe to its end
    write(read_by_a_process(pipe), API_KEY)  # and the reload reads it again
    for _ in range(100):
        if "reloaded" in [e["event"] for e in read_log(log)]:
            break
        time.sleep(0.05)
    assert proc.poll() is None and "reloaded" in [e["event"] for e in read_log(log)]
