"""One attempt over real HTTP, against the sandbox: answers become Responses, failures gateway
errors, timeouts come from the request's budget, and each attempt leaves a log line, metrics
and an entry in the request's stats."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import events, never_rounded

from gateway import deadline, logs
from gateway.errors import AttemptFailed, AttemptTimedOut, DeadlineExceeded
from gateway.sandbox.server import CALLS, Faults
from gateway.upstream.call import Call
from gateway.upstream.transport import HttpTransport

AUTH = {"Authorization": "Bearer sandbox-oauth-token"}
FIND = Call("GET", "/api/v2/users/1001", "/api/v2/users/{{ id }}", headers=AUTH)
CAP = 100_000  # the answers' size cap of these transports, in bytes


@pytest.fixture
async def transport(sandbox: Any) -> AsyncIterator[HttpTransport]:
    url = str(sandbox.make_url("")).rstrip("/")
    t = HttpTransport(
        url, name="zendesk", attempt_timeout=0.5, max_connections=4, max_answer_bytes=CAP
    )
    await t.start()
    yield t
    await t.close()


async def test_an_answer(transport: HttpTransport) -> None:
    resp = await transport.send(FIND)
    assert resp.ok and resp.data["user"]["id"] == 1001
    assert resp.headers["content-type"].startswith("application/json")  # any case


async def test_an_error_body_that_is_not_json_is_an_answer(
    transport: HttpTransport, faults: Faults
) -> None:
    faults.status, faults.body, faults.content_type = 500, "<html>oops</html>", "text/html"
    resp = await transport.send(FIND)
    assert resp.status == 500 and resp.data is None and resp.text == "<html>oops</html>"


async def test_a_2xx_body_that_is_not_json_is_a_failed_attempt(
    transport: HttpTransport, faults: Faults
) -> None:
    faults.garbage = True
    with pytest.raises(AttemptFailed) as raised:
        await transport.send(FIND)
    assert raised.value.cause == "garbage"


async def test_a_reset_is_a_failed_attempt(transport: HttpTransport, faults: Faults) -> None:
    faults.reset = True
    with pytest.raises(AttemptFailed) as raised:
        await transport.send(FIND)
    assert "Disconnected" in raised.value.cause
    assert not raised.value.not_applied  # sent: the CRM may have applied it


async def test_a_refused_connection_is_a_failed_attempt() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    t = HttpTransport(
        closed, name="zendesk", attempt_timeout=0.5, max_connections=1, max_answer_bytes=CAP
    )
    await t.start()
    try:
        with pytest.raises(AttemptFailed) as raised:
            await t.send(FIND)
    finally:
        await t.close()
    assert raised.value.cause == "ClientConnectorError"
    assert raised.value.not_applied  # nothing was sent: a write's outcome is known


async def test_a_hang_is_an_attempt_timeout_then_the_budget(
    transport: HttpTransport, faults: Faults
) -> None:
    faults.delay = 5
    with deadline.budget(3.0, 0.1), pytest.raises(AttemptTimedOut):
        await transport.send(FIND)  # the attempt's own cap: 0.5 s
    with deadline.budget(0.3, 0.1), pytest.raises(DeadlineExceeded) as raised:
        await transport.send(FIND)  # what the budget leaves: 0.2 s, and then nothing
    assert not isinstance(raised.value, AttemptTimedOut)
    assert not raised.value.not_applied  # it went out, and may have been applied


async def test_an_attempts_timeout_is_never_rounded_up(
    sandbox: Any, client_timeouts: list[aiohttp.ClientTimeout]
) -> None:
    """aiohttp rounds a timeout over its `ceil_threshold` (5 s by default) up to a whole second
    of the loop's clock, so a 5.5 s cap ran up to 6.5 s: the deadline aiohttp sets from the
    attempt's timeout is the cap, to the millisecond."""
    url = str(sandbox.make_url("")).rstrip("/")
    t = HttpTransport(
        url, name="zendesk", attempt_timeout=5.5, max_connections=4, max_answer_bytes=CAP
    )
    await t.start()
    try:
        await t.send(FIND)
    finally:
        await t.close()
    (timeout,) = client_timeouts
    assert timeout.total == 5.5 and never_rounded(timeout)


async def test_no_attempt_once_the_budget_is_spent(transport: HttpTransport, sandbox: Any) -> None:
    stats = logs.start_request()
    with deadline.budget(0.05, 0.1), pytest.raises(DeadlineExceeded) as raised:
        await transport.send(FIND)
    assert sandbox.app[CALLS] == [] and stats.calls == []
    assert raised.value.not_applied


async def test_each_attempt_is_traced(transport: HttpTransport, capsys: Any) -> None:
    stats = logs.start_request()
    stats.keep_bodies = True
    call = Call(
        "GET",
        "/api/v2/users/1001",
        "/api/v2/users/{{ id }}",
        query={"include": "identities"},
        headers=AUTH,
        attempt=2,
        retry_reason="timeout",
    )
    await transport.send(call)
    [entry] = stats.calls
    assert entry["url"] == "/api/v2/users/1001?include=identities"
    assert entry["status"] == 200 and entry["retry_reason"] == "timeout"
    assert entry["headers"] == AUTH and stats.upstream_calls == 1
    [line] = [e for e in events(capsys.readouterr().out) if e["event"] == "upstream"]
    assert line["path"] == "/api/v2/users/{{ id }}" and line["attempt"] == 2  # no id in logs


async def test_the_untraced_exchange_leaves_no_trace(transport: HttpTransport, capsys: Any) -> None:
    stats = logs.start_request()
    await transport.exchange(FIND)
    assert stats.calls == [] and not any(
        e["event"] == "upstream" for e in events(capsys.readouterr().out)
    )


async def test_a_cancelled_attempt_is_traced_and_frees_its_connection(
    transport: HttpTransport, faults: Faults
) -> None:
    faults.delay, faults.times = 5, 1
    stats = logs.start_request()
    task = asyncio.create_task(transport.send(FIND))
    while faults.times:  # until the sandbox holds the call (a loaded machine may take a while)
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stats.calls[0]["status"] == "cancelled"
    assert (await transport.send(FIND)).ok


def test_answers_are_read_as_json_whatever_the_crm_sends() -> None:
    from gateway.upstream.transport import _json

    assert _json('{"a": 1}') == {"a": 1}
    assert _json("[" * 5000 + "]" * 5000) is None  # too deep: not JSON, never a RecursionError
    assert _json('{"a": "x\\ud800y"}') == {"a": "x\ud800y"}  # repaired later by the engine
    assert _json('{"a": "x\ny"}') == {"a": "x\ny"}  # a raw control character in a string
    assert _json("") is None and _json("<html>") is None


async def test_an_answer_over_the_size_cap_is_a_failed_attempt_not_worth_repeating(
    transport: HttpTransport, faults: Faults, capsys: Any
) -> None:
    """Its Content-Length says so: nothing of it is read."""
    faults.status, faults.body = 200, '{"user": {"notes": "' + "x" * CAP + '"}}'
    with pytest.raises(AttemptFailed) as raised:
        await transport.send(FIND)
    assert raised.value.cause == "too_large" and not raised.value.repeatable
    (line,) = [e for e in events(capsys.readouterr().out) if e["event"] == "upstream_too_large"]
    assert line["path"] == FIND.route and line["limit_bytes"] == CAP
    assert line["content_length"] == len(faults.body)
    faults.status = None  # the connection it came on is not reused half read
    assert (await transport.send(FIND)).ok


async def test_a_streamed_answer_is_read_no_further_than_the_size_cap(
    aiohttp_server: Any, capsys: Any
) -> None:
    """Without a Content-Length (chunked), the reading stops at the cap: a CRM that streams
    hundreds of megabytes does not make the gateway hold them."""
    sent = [0]

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"user_fields": [')
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # 64 MB, unless the reader hangs up first
                await resp.write(b'{"key": "' + b"a" * 65536 + b'"},')
                sent[0] += 65536
        return resp

    app = web.Application()
    app.router.add_get("/api/v2/user_fields", endless)
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    t = HttpTransport(
        url, name="zendesk", attempt_timeout=5, max_connections=1, max_answer_bytes=CAP
    )
    await t.start()
    try:
        with pytest.raises(AttemptFailed) as raised:
            await t.send(Call("GET", "/api/v2/user_fields", "/api/v2/user_fields"))
    finally:
        await t.close()
    assert raised.value.cause == "too_large"
    assert sent[0] < 64 * 65536  # it hung up long before the end
    (line,) = [e for e in events(capsys.readouterr().out) if e["event"] == "upstream_too_large"]
    assert line["content_length"] is None and line["limit_bytes"] == CAP
