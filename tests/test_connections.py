"""Connections that do not send a whole request head in time are closed (slowloris), in a single
process and in every worker of a supervisor; connections that do are served, kept alive."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from conftest import (
    AUTH,
    events,
    free_port,
    gateway,
    gateway_env,
    process_config,
    raw_http,
    read_log,
    until_up,
)

from gateway.connections import HeadDeadline

DEADLINE = 0.5  # server.header_timeout_seconds of the processes below
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"


# -- the sweep, on a fake server and a clock of the test's --------------------------------------


class FakeConnection:
    def __init__(self) -> None:
        self.transport: object | None = object()
        self.closes = 0

    def force_close(self) -> None:
        self.closes += 1
        self.transport = None


class FakeServer:
    """What `HeadDeadline` uses of aiohttp's `web.Server`."""

    def __init__(self) -> None:
        self.connections: list[FakeConnection] = []
        self.made: list[Any] = []

    def request_factory(
        self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> Any:
        self.made.append(message)
        return "request"


def test_sweep_closes_the_connections_without_a_head_past_their_deadline() -> None:
    server, now = FakeServer(), [100.0]
    deadline = HeadDeadline(server, lambda: 10.0, clock=lambda: now[0])
    silent, served, late = FakeConnection(), FakeConnection(), FakeConnection()
    server.connections += [silent, served]
    assert deadline.sweep() == 0 and deadline.waiting == 2  # first seen at 100
    # A whole head read: the request is still made by the server's own factory.
    assert server.request_factory("head", None, served, None, None) == "request"
    assert server.made == ["head"]
    now[0] = 105.0
    server.connections.append(late)
    assert deadline.sweep() == 0 and deadline.waiting == 2  # served is no longer timed
    now[0] = 109.9
    assert deadline.sweep() == 0
    now[0] = 110.0  # the silent one's deadline
    assert deadline.sweep() == 1
    assert (silent.closes, served.closes, late.closes) == (1, 0, 0)
    now[0] = 114.0  # closed already, not closed (nor counted) again while it is still listed
    assert deadline.sweep() == 0 and silent.closes == 1
    server.connections.remove(silent)
    now[0] = 115.0
    assert deadline.sweep() == 1 and late.closes == 1
    now[0] = 1000.0  # a served connection is never timed again, however long it stays
    assert deadline.sweep() == 0 and served.closes == 0
    server.connections.clear()
    assert deadline.sweep() == 0 and deadline.waiting == 0  # the gone are forgotten


def test_the_deadline_is_read_at_every_sweep() -> None:
    """A reload's new `server.header_timeout_seconds` applies to the connections waiting."""
    server, now, seconds = FakeServer(), [0.0], [10.0]
    deadline = HeadDeadline(server, lambda: seconds[0], clock=lambda: now[0])
    conn = FakeConnection()
    server.connections.append(conn)
    deadline.sweep()
    now[0] = 3.0
    assert deadline.sweep() == 0
    seconds[0] = 2.0
    assert deadline.sweep() == 1 and conn.closes == 1


# -- the real thing: gateway processes, raw sockets -----------------------------------------------


async def logged(log: Path, event: str, times: int) -> None:
    """Wait (30 s at most) until the processes writing ``log`` have logged ``event`` so often."""
    end = time.monotonic() + 30
    while [e["event"] for e in events(log.read_text())].count(event) < times:
        assert time.monotonic() < end, f"{event} not logged {times} times"
        await asyncio.sleep(0.05)


async def closed_by_the_gateway(reader: asyncio.StreamReader) -> bytes:
    """What the gateway sent before it closed the connection (waited for, not slept)."""
    try:
        return await asyncio.wait_for(reader.read(), 30)
    except ConnectionResetError:
        return b""


async def silent(port: int, first: bool = False) -> float:
    """Connects and sends nothing (``first``: nothing after a request, answered): the seconds
    until the gateway closed the connection."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if first:
            start = await served(reader, writer)
        assert await closed_by_the_gateway(reader) == b""
        return time.monotonic() - start
    finally:
        writer.close()


async def slowloris(port: int, first: bool = False) -> float:
    """Sends a request head a header line at a time, never ending it (``first``: after a
    request, answered): the seconds until the gateway closed the connection."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if first:
        start = await served(reader, writer)

    async def dribble() -> None:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n")
        for n in range(10_000):
            await asyncio.sleep(0.05)
            writer.write(b"X-Slow-%d: a\r\n" % n)
            await writer.drain()

    sending = asyncio.create_task(dribble())
    try:
        assert await closed_by_the_gateway(reader) == b""
        return time.monotonic() - start
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)  # a broken pipe, by now
        writer.close()


async def answer(reader: asyncio.StreamReader) -> bytes:
    """One answer on a kept-alive connection: its status line."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n")[0]


async def served(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    """A request, answered 200 on a connection kept alive: when it was sent (the keep-alive's
    time runs from its answer, later)."""
    sent = time.monotonic()
    writer.write(HEALTHZ)
    assert await answer(reader) == b"HTTP/1.1 200 OK"
    return sent


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_connections_without_a_whole_head_in_time_are_closed(
    sandbox: Any, processes: Any, tmp_path: Path, workers: str
) -> None:
    """Silent and slow connections are closed once `server.header_timeout_seconds` has passed
    (never before), in one process and in every worker; a request sent at once is served, and
    a kept-alive connection that has sent one is not timed again."""
    env = gateway_env(str(sandbox.make_url("")).rstrip("/"))
    config = process_config(tmp_path, server={"header_timeout_seconds": DEADLINE})
    port, log = free_port(), tmp_path / "gateway.log"
    args = ("serve", "--config", str(config), "--port", str(port), "--workers", workers)
    processes.append(gateway(*args, env=env, log=log))
    await until_up(port)
    await logged(log, "started", int(workers))  # every worker listens

    # Kept alive: a request at once, answered, and the connection left open.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await served(reader, writer)
        # Four of each, on either worker, opened after the kept-alive connection: closed once
        # their deadline has passed, later than that connection's would have.
        closed = await asyncio.gather(*[silent(port) for _ in range(4)],
                                      *[slowloris(port) for _ in range(4)])  # fmt: skip
        assert min(closed) >= DEADLINE, closed
        # Meanwhile, and after, requests are served: a new connection, and the kept-alive one.
        status, _, _ = await raw_http(
            port, b"GET /healthz HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n"
        )
        assert status == 200
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/api/v1/customer/1001"
            async with http.get(url, headers=AUTH) as resp:
                assert resp.status == 200
        await served(reader, writer)
    finally:
        writer.close()
    read_log(log)  # scanned for secrets
    metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
    assert "crm_gateway_header_timeouts_total 8.0" in metrics


async def test_a_reload_applies_a_new_header_timeout_to_the_connections_waiting(
    sandbox: Any, processes: Any, tmp_path: Path
) -> None:
    """Under attack, an operator lowers the timeout and reloads: the connections already
    waiting are timed by the new value, in every worker."""
    env = gateway_env(str(sandbox.make_url("")).rstrip("/"))
    config = process_config(tmp_path, server={"header_timeout_seconds": 3600, "watch_seconds": 0})
    port, log = free_port(), tmp_path / "gateway.log"
    args = ("serve", "--config", str(config), "--port", str(port), "--workers", "2")
    proc = gateway(*args, env=env, log=log)
    processes.append(proc)
    await until_up(port)
    await logged(log, "started", 2)
    waiting = [asyncio.create_task(silent(port)) for _ in range(4)]
    await asyncio.sleep(0.5)  # connected, and waiting: an hour to go
    assert not any(task.done() for task in waiting)
    data = yaml.safe_load(config.read_text())
    data["server"]["header_timeout_seconds"] = DEADLINE
    config.write_text(yaml.safe_dump(data))
    proc.send_signal(signal.SIGHUP)
    assert min(await asyncio.gather(*waiting)) >= DEADLINE
    await logged(log, "reloaded", 2)  # by both workers (the connections may be on one)
    assert "reload_needs_restart" not in [e["event"] for e in read_log(log)]


async def test_after_an_answer_the_next_head_has_the_keepalive_timeout(
    sandbox: Any, processes: Any, tmp_path: Path
) -> None:
    """A connection that sends a request at once, then nothing, or its next head a line now and
    then (a slowloris past the first deadline), is closed `server.keepalive_timeout_seconds`
    after the answer: aiohttp's own default was an hour (the slow one got a 400 once it had
    sent 128 header lines)."""
    keepalive = 1.5
    server = {"header_timeout_seconds": DEADLINE, "keepalive_timeout_seconds": keepalive}
    config = process_config(tmp_path, server=server)
    env = gateway_env(str(sandbox.make_url("")).rstrip("/"))
    port, log = free_port(), tmp_path / "gateway.log"
    args = ("serve", "--config", str(config), "--port", str(port), "--workers", "2")
    processes.append(gateway(*args, env=env, log=log))
    await until_up(port)
    await logged(log, "started", 2)
    closed = await asyncio.gather(*[silent(port, first=True) for _ in range(2)],
                                  *[slowloris(port, first=True) for _ in range(2)])  # fmt: skip
    assert min(closed) >= keepalive, closed
    read_log(log)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()
