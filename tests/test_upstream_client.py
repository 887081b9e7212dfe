"""The layers composed (`Upstream.request`), with a fake transport and an injected clock, and
once over real HTTP: requests (not attempts) reach the breaker, a probe always ends, and a
narrow rate limit holds only its scope."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from conftest import DEFAULT_BREAKER, DEFAULT_RETRY, ROOT, FakeClock, FakeTransport, answer, tuned

from gateway import connect, deadline
from gateway.config import Config
from gateway.errors import DeadlineExceeded, UpstreamUnavailable
from gateway.exchange import Response
from gateway.mapping.spec import load_mapping
from gateway.sandbox.server import CALLS, Faults
from gateway.upstream import BreakerSettings, Upstream
from gateway.upstream.auth import StaticAuth
from gateway.upstream.call import Call
from gateway.upstream.limits import RateLimits

RETRY = dataclasses.replace(
    DEFAULT_RETRY, attempts=3, backoff_start_seconds=0.1, backoff_max_seconds=1.0
)
BREAKER = BreakerSettings(failure_rate=0.5, min_requests=2, window_seconds=30, cooldown_seconds=10)


def quota_left(resp: Response) -> bool:
    return int(resp.headers.get("X-Rate-Limit-Remaining", "0")) > 0


def client(
    transport: FakeTransport, clock: FakeClock, breaker: BreakerSettings = BREAKER
) -> Upstream:
    return Upstream(
        transport,
        name="crm",
        headers={"Accept": "application/json", "X-Both": "mapping"},
        auth=StaticAuth({"Authorization": "Basic abc", "X-Both": "auth"}),
        retry=RETRY,
        breaker=breaker,
        limits=RateLimits(narrow=quota_left),
        clock=clock,
    )


async def get(up: Upstream, path: str = "/users/1") -> Response:
    return await up.request("GET", path, route="/users/{{ id }}", retry_safe=True)


async def put(up: Upstream, path: str = "/users/1") -> Response:
    return await up.request("PUT", path, route="/users/{{ id }}", body={}, retry_safe=True)


async def test_headers_mapping_then_auth_then_the_requests_own() -> None:
    transport = FakeTransport(answer(200, {}))
    up = client(transport, FakeClock())
    await up.request("GET", "/x", route="/x", headers={"X-Own": "1"})
    assert transport.calls[0].headers == {
        "Accept": "application/json",
        "X-Both": "auth",
        "Authorization": "Basic abc",
        "X-Own": "1",
    }


async def test_a_request_retried_to_exhaustion_is_one_failure_and_does_not_open() -> None:
    transport = FakeTransport(answer(500))
    up = client(transport, FakeClock(), DEFAULT_BREAKER)  # 50 % of 20 in 30 s
    assert (await get(up)).status == 500
    assert len(transport.calls) == 3
    assert (up.breaker.requests, up.breaker.failures, up.breaker.state) == (1, 1, "closed")
    transport.script = [answer(200, {})]
    assert (await get(up)).ok  # it reached the CRM


async def open_breaker(up: Upstream, transport: FakeTransport, clock: FakeClock) -> None:
    transport.script = [answer(503)]
    for _ in range(2):
        assert (await get(up)).status == 503
    assert up.breaker.state == "open"
    with pytest.raises(UpstreamUnavailable):
        await get(up)
    clock.advance(10)
    transport.calls.clear()


async def test_a_write_stopped_before_it_went_out_is_known_not_applied() -> None:
    """An error that ends a call before any attempt reached the transport (the circuit, a
    hold) says the CRM cannot have applied it; one after an attempt went out does not."""
    clock, transport = FakeClock(), FakeTransport(answer(503))
    up = client(transport, clock)
    for _ in range(2):
        assert (await get(up)).status == 503
    transport.calls.clear()
    with pytest.raises(UpstreamUnavailable) as raised:  # the circuit is open
        await put(up)
    assert raised.value.not_applied and transport.calls == []
    clock.advance(10)
    transport.script = [DeadlineExceeded()]  # it went out, and got no answer in time
    with pytest.raises(DeadlineExceeded) as late:
        await up.request("POST", "/users", route="/users", body={})
    assert not late.value.not_applied and len(transport.calls) == 1


async def never(call: Call) -> Response:
    await asyncio.Event().wait()
    raise AssertionError


async def test_a_probe_that_hangs_past_the_deadline_leaves_the_breaker_able_to_close() -> None:
    clock, transport = FakeClock(), FakeTransport()
    up = client(transport, clock)
    await open_breaker(up, transport, clock)
    transport.script = [never]  # the CRM hangs; the app's own timeout ends the request
    with deadline.budget(0.2, 0.05), pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await get(up)
    assert up.breaker.state == "open"  # a failed probe: cool down again
    clock.advance(10)
    transport.script = [answer(200, {})]  # the CRM answers again
    assert (await get(up)).ok and up.breaker.state == "closed"


async def test_a_probe_whose_attempt_ends_at_the_budget_leaves_the_breaker_able_to_close() -> None:
    clock, transport = FakeClock(), FakeTransport()
    up = client(transport, clock)
    await open_breaker(up, transport, clock)
    transport.script = [DeadlineExceeded()]  # what the HTTP transport raises at the budget
    with pytest.raises(DeadlineExceeded):
        await get(up)
    clock.advance(10)
    transport.script = [answer(200, {})]
    assert (await get(up)).ok and up.breaker.state == "closed"


async def test_a_cancelled_probe_leaves_the_breaker_able_to_close() -> None:
    clock, transport = FakeClock(), FakeTransport()
    up = client(transport, clock)
    await open_breaker(up, transport, clock)
    transport.script = [never]
    probe = asyncio.create_task(get(up))
    await asyncio.sleep(0.01)
    with pytest.raises(UpstreamUnavailable):
        await get(up)  # one probe at a time
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    transport.script = [answer(200, {})]
    assert (await get(up)).ok and up.breaker.state == "closed"  # no second cool-down


async def test_of_racing_callers_in_half_open_one_probes() -> None:
    clock, transport = FakeClock(), FakeTransport()
    up = client(transport, clock)
    await open_breaker(up, transport, clock)

    async def slow(call: Call) -> Response:
        await asyncio.sleep(0.01)
        return answer(200, {})

    transport.script = [slow]
    results = await asyncio.gather(*(get(up) for _ in range(20)), return_exceptions=True)
    assert sum(isinstance(r, Response) for r in results) == 1
    assert sum(isinstance(r, UpstreamUnavailable) for r in results) == 19
    assert len(transport.calls) == 1 and up.breaker.state == "closed"


@pytest.mark.parametrize("quota", ["0", "250"])
async def test_a_probe_answered_429_leaves_the_breaker_able_to_close(quota: str) -> None:
    clock, transport = FakeClock(), FakeTransport()
    up = client(transport, clock)
    await open_breaker(up, transport, clock)
    transport.script = [answer(429, Retry_After="60", X_Rate_Limit_Remaining=quota)]
    with deadline.budget(7.2, 0.1), pytest.raises(UpstreamUnavailable):
        await put(up)  # a wait past the budget
    assert up.breaker.state == "half_open"
    if quota == "0":
        clock.advance(60)  # the account's hold
    transport.script = [answer(200, {})]
    with deadline.budget(7.2, 0.1):
        assert (await get(up, "/users/2")).ok
    assert up.breaker.state == "closed"


async def test_a_narrow_429_holds_only_that_records_writes() -> None:
    clock = FakeClock()
    transport = FakeTransport(answer(429, Retry_After="50", X_Rate_Limit_Remaining="399"))
    up = client(transport, clock)
    with deadline.budget(7.2, 0.1):
        with pytest.raises(UpstreamUnavailable) as raised:
            await put(up)
        assert raised.value.headers["Retry-After"] == "50"
        transport.script = [answer(200, {})]
        assert (await put(up, "/users/2")).ok  # another record's writes
        assert (await get(up, "/users/1")).ok  # this record's reads
        assert (await get(up, "/users/2")).ok
        sent = len(transport.calls)
        with pytest.raises(UpstreamUnavailable):
            await put(up)  # held: not sent at all
        assert len(transport.calls) == sent and clock.slept == []
    clock.advance(50)
    assert (await put(up)).ok


async def test_a_narrow_429_that_fits_waits_only_for_itself() -> None:
    clock = FakeClock()
    transport = FakeTransport(
        answer(429, Retry_After="2", X_Rate_Limit_Remaining="399"), answer(200, {})
    )
    up = client(transport, clock)
    with deadline.budget(7.2, 0.1):
        assert (await put(up)).ok
    assert clock.slept == [2] and [c.retry_reason for c in transport.calls] == [None, "429"]


async def test_over_real_http_a_cancelled_probe_ends(
    config: Config, faults: Faults, sandbox: Any
) -> None:
    """The same stack `crm-gateway serve` builds, against the sandbox."""
    breaker = dataclasses.replace(BREAKER, cooldown_seconds=0.2)
    fast = tuned(config, upstream={"circuit_breaker": breaker, "attempt_timeout_seconds": 0.3})
    up = connect.upstream(fast, load_mapping(fast.upstream.mapping))
    await up.start()
    try:
        faults.status = 500
        for _ in range(2):
            assert (await get(up, "/api/v2/users/1001")).status == 500
        assert up.breaker.state == "open"
        await asyncio.sleep(0.25)
        faults.status, faults.delay = None, 30
        probe = asyncio.create_task(get(up, "/api/v2/users/1001"))
        await asyncio.sleep(0.1)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        faults.delay = 0
        assert (await get(up, "/api/v2/users/1001")).ok and up.breaker.state == "closed"
        assert sandbox.app[CALLS][-1] == "GET /api/v2/users/1001"
    finally:
        await up.close()


def imports(package: Path) -> set[str]:
    found = set()
    for file in package.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_the_mapping_and_the_upstream_client_do_not_import_each_other() -> None:
    gateway = ROOT / "gateway"
    assert not {m for m in imports(gateway / "mapping") if m.startswith("gateway.upstream")}
    assert not {m for m in imports(gateway / "upstream") if m.startswith("gateway.mapping")}
    assert "gateway.config" not in imports(gateway / "upstream")  # plain settings come in


def test_a_call_with_other_headers_is_the_call_replace_makes() -> None:
    """Call.with_headers copies every field but the headers (a field added to Call must be
    copied there too)."""
    values = {
        f.name: f"v-{f.name}" if f.type in ("str", "str | None") else None
        for f in dataclasses.fields(Call)
    }
    call = Call(
        **{
            **values,
            "query": {"q": "1"},
            "headers": {"a": "1"},
            "body": {"b": 1},
            "retry_safe": True,
            "attempt": 3,
        }
    )
    assert call.with_headers({"x": "y"}) == dataclasses.replace(call, headers={"x": "y"})
