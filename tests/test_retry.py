"""docs/behaviour.md §4, row by row, with faults injected into the sandbox: the status and body the
caller gets, and the time it took (always inside the budget). Counts come from the sandbox's
state and call log, not from the gateway's."""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import json
import time
from typing import Any

import pytest
from conftest import API, AUTH, DEFAULT_BREAKER, FAST_BUDGET, interaction, tuned

from gateway.config import Config
from gateway.sandbox.server import CALLS, Faults
from gateway.sandbox.store import Store

BUDGET = FAST_BUDGET
FIND = f"{API}/customer/1001"


def calls(sandbox: Any, fragment: str) -> int:
    return sum(fragment in c for c in sandbox.app[CALLS])


async def timed(coro: Any) -> tuple[Any, float]:
    started = time.monotonic()
    resp = await coro
    return resp, time.monotonic() - started


async def error_body(resp: Any) -> dict[str, Any]:
    body: dict[str, Any] = await resp.json()
    assert set(body) == {"error", "message"} and "tracking id:" in body["message"]
    return body


# -- 429 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", ["0.3", "0", None, "nonsense"])
async def test_429_with_a_wait_that_fits_waits_and_answers(
    gw: Any, faults: Faults, sandbox: Any, retry_after: str | None
) -> None:
    faults.status, faults.retry_after, faults.times = 429, retry_after, 1
    faults.body, faults.content_type = "Rate limit exceeded", "text/plain"
    resp, took = await timed(gw.get(FIND, headers=AUTH))
    assert resp.status == 200 and (await resp.json())["id"] == "1001"
    assert calls(sandbox, "/users/1001") == 2
    assert took < BUDGET
    if retry_after == "0.3":
        assert took >= 0.3


async def test_429_with_an_http_date_that_fits(gw: Any, faults: Faults) -> None:
    faults.status, faults.times = 429, 1
    faults.retry_after = email.utils.formatdate(time.time() + 1, usegmt=True)
    resp, took = await timed(gw.get(FIND, headers=AUTH))
    assert resp.status == 200 and took < BUDGET


@pytest.mark.parametrize("retry_after", ["120", "Wed, 21 Oct 2099 07:28:00 GMT", "-5e9"])
async def test_429_past_the_budget_is_503_at_once(
    gw: Any, faults: Faults, sandbox: Any, retry_after: str
) -> None:
    faults.status, faults.retry_after = 429, retry_after
    resp, took = await timed(gw.get(FIND, headers=AUTH))
    if retry_after == "-5e9":  # clamped to 0: retried until the attempts run out
        assert resp.status == 503
    else:
        assert resp.status == 503 and took < 0.5
        assert resp.headers["Retry-After"] == "30"  # clamped to max_retry_after_seconds
    assert (await error_body(resp))["error"] == "ServiceUnavailable"
    # The gate now holds every call: the next request does not reach the upstream at all.
    before = calls(sandbox, "/users/1001")
    if retry_after != "-5e9":
        again = await gw.get(f"{API}/case/5001", headers=AUTH)
        assert again.status == 503 and calls(sandbox, "/users/1001") == before
        assert calls(sandbox, "/tickets/5001") == 0


async def test_exhausted_rate_limit_headers_hold_calls(
    gw: Any, faults: Faults, sandbox: Any
) -> None:
    faults.status, faults.times = 200, 1
    faults.body = json.dumps({"user": {"id": 1001, "name": "Jane Doe"}})
    faults.headers = {"ratelimit-remaining": "0", "ratelimit-reset": "60"}
    assert (await gw.get(FIND, headers=AUTH)).status == 200  # the last call of the quota
    resp, took = await timed(gw.get(FIND, headers=AUTH))
    assert resp.status == 503 and took < 0.5 and calls(sandbox, "/users/1001") == 1


# -- 5xx, reset, refused, garbage ------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 502},
        {"status": 503},
        {"reset": True},
        {"garbage": True},
        {"status": 500, "body": "<html>oops</html>", "content_type": "text/html"},
    ],
)
async def test_a_read_is_retried_through_one_failure(
    gw: Any, faults: Faults, sandbox: Any, fault: dict[str, Any]
) -> None:
    for key, value in {**fault, "times": 1}.items():
        setattr(faults, key, value)
    resp, took = await timed(gw.get(FIND, headers=AUTH))
    assert resp.status == 200 and took < BUDGET
    assert calls(sandbox, "/users/1001") == 2


@pytest.mark.parametrize("fault", [{"status": 500}, {"reset": True}, {"garbage": True}])
async def test_a_read_that_keeps_failing_is_502_inside_the_budget(
    gw: Any, faults: Faults, sandbox: Any, fault: dict[str, Any]
) -> None:
    for key, value in fault.items():
        setattr(faults, key, value)
    resp, took = await timed(gw.get(FIND, headers=AUTH))
    assert resp.status == 502 and took < BUDGET
    assert (await error_body(resp))["error"] == "BadGateway"
    assert calls(sandbox, "/users/1001") == 3  # the configured attempts


async def test_an_unkeyed_write_is_not_retried(gw: Any, faults: Faults, sandbox: Any) -> None:
    faults.status, faults.method, faults.times = 500, "POST", 1
    resp = await gw.post(f"{API}/customer", json={"name": "Once Only"}, headers=AUTH)
    assert resp.status == 502
    assert sum(c == "POST /api/v2/users" for c in sandbox.app[CALLS]) == 1


async def test_refused_connection_is_502(make_client: Any, fast: Config) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    client = await make_client(tuned(fast, upstream={"base_url": closed}))
    resp, took = await timed(client.get(FIND, headers=AUTH))
    assert resp.status == 502 and took < BUDGET


# -- slow, hang ------------------------------------------------------------------------------


async def test_a_slow_answer_inside_the_attempt_timeout_is_fine(gw: Any, faults: Faults) -> None:
    faults.delay = 0.3
    resp, took = await timed(gw.get(FIND, headers=AUTH))
    assert resp.status == 200 and 0.3 <= took < BUDGET


async def test_a_hang_is_504_at_the_budget(gw: Any, faults: Faults) -> None:
    faults.delay = 30
    resp, took = await timed(gw.get(FIND, headers=AUTH))
    assert resp.status == 504 and took < BUDGET + 0.3
    assert (await error_body(resp))["error"] == "Timeout"


# -- credentials -----------------------------------------------------------------------------


async def test_refused_credentials_are_502_and_a_loud_log_line(
    make_client: Any, fast: Config, capsys: Any
) -> None:
    from gateway.config import Secret

    wrong = {**fast.upstream.credentials, "api_token": Secret("revoked")}
    client = await make_client(tuned(fast, upstream={"credentials": wrong}))
    resp = await client.get(FIND, headers=AUTH)
    assert resp.status == 502
    assert "credentials" in (await error_body(resp))["message"]
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    loud = [x for x in lines if x["event"] == "upstream_refused_credentials"]
    assert loud and loud[0]["level"] == "error" and "revoked" not in json.dumps(lines)


# -- circuit breaker -------------------------------------------------------------------------


async def test_circuit_opens_fails_fast_and_probes(
    make_client: Any, fast: Config, faults: Faults, sandbox: Any
) -> None:
    breaker = dataclasses.replace(
        DEFAULT_BREAKER, failure_rate=0.5, min_requests=2, cooldown_seconds=0.3
    )
    client = await make_client(tuned(fast, upstream={"circuit_breaker": breaker}))
    faults.status = 500
    for _ in range(2):  # two requests, each retried to exhaustion: two failures, open
        assert (await client.get(FIND, headers=AUTH)).status == 502
    seen = calls(sandbox, "/users/1001")
    resp, took = await timed(client.get(FIND, headers=AUTH))
    assert resp.status == 503 and took < 0.1 and calls(sandbox, "/users/1001") == seen
    assert int(resp.headers["Retry-After"]) >= 1
    faults.status = None
    await asyncio.sleep(0.35)  # cool-down over: one probe goes through and closes it
    assert (await client.get(FIND, headers=AUTH)).status == 200


# -- no duplicates ---------------------------------------------------------------------------


async def test_50_identical_creates_under_timeouts_make_one_ticket(
    gw: Any, faults: Faults, store: Store, sandbox: Any
) -> None:
    # The first create is applied upstream but answers after the attempt timeout.
    faults.delay_after, faults.method, faults.path_prefix, faults.times = (
        0.7,
        "POST",
        "/api/v2/tickets",
        1,
    )
    body = {"customerId": "1001", "title": "Fifty times", "interactions": [interaction("50")]}
    responses = await asyncio.gather(
        *(gw.post(f"{API}/case", json=body, headers=AUTH) for _ in range(50))
    )
    assert {r.status for r in responses} == {201}
    ids = {(await r.json())["id"] for r in responses}
    assert len(ids) == 1
    assert sum(t["subject"] == "Fifty times" for t in store.tickets.values()) == 1
    assert sum(c == "POST /api/v2/tickets" for c in sandbox.app[CALLS]) == 2  # timed out, retried


async def test_creates_from_two_replicas_make_one_ticket(
    make_client: Any, fast: Config, store: Store
) -> None:
    one, two = await make_client(fast), await make_client(fast)
    body = {"customerId": "1001", "title": "Two replicas", "interactions": [interaction("2r")]}
    first = await (await one.post(f"{API}/case", json=body, headers=AUTH)).json()
    second = await (await two.post(f"{API}/case", json=body, headers=AUTH)).json()
    assert first["id"] == second["id"]
    assert sum(t["subject"] == "Two replicas" for t in store.tickets.values()) == 1


async def test_a_changed_repeat_returns_the_case_already_made(gw: Any, store: Store) -> None:
    body = {"customerId": "1001", "title": "Changed", "interactions": [interaction("c1")]}
    first = await (await gw.post(f"{API}/case", json=body, headers=AUTH)).json()
    changed = {**body, "priority": "urgent"}  # same key, different request: a mismatch upstream
    resp = await gw.post(f"{API}/case", json=changed, headers=AUTH)
    assert resp.status == 201 and (await resp.json())["id"] == first["id"]
    assert sum(t["subject"] == "Changed" for t in store.tickets.values()) == 1


async def test_racing_patches_add_each_interaction_once(
    gw: Any, faults: Faults, store: Store
) -> None:
    faults.delay = 0.02  # both PATCHes read before either writes
    one = {"interactions": [interaction("r1"), interaction("r2")]}
    two = {"interactions": [interaction("r2"), interaction("r3")], "priority": "low"}
    results = await asyncio.gather(
        gw.patch(f"{API}/case/5001", json=one, headers=AUTH),
        gw.patch(f"{API}/case/5001", json=two, headers=AUTH),
    )
    assert [r.status for r in results] == [200, 200]
    text = "\n".join(c["body"] for c in store.comments[5001])
    for marker in ("r1", "r2", "r3"):
        assert text.count(f"[khoros:twitter:{marker}]") == 1, marker
    assert store.tickets[5001]["priority"] == "low"


async def test_a_patch_retried_after_a_timeout_adds_its_comment_once(
    gw: Any, faults: Faults, store: Store
) -> None:
    faults.delay_after, faults.method, faults.times = 0.7, "PUT", 1
    resp = await gw.patch(
        f"{API}/case/5001", json={"interactions": [interaction("t1")]}, headers=AUTH
    )
    assert resp.status == 200
    text = "\n".join(c["body"] for c in store.comments[5001])
    assert text.count("[khoros:twitter:t1]") == 1


async def test_calls_in_flight_are_capped(
    make_client: Any, fast: Config, faults: Faults, sandbox: Any
) -> None:
    from gateway.sandbox.server import LOAD

    client = await make_client(tuned(fast, upstream={"max_in_flight": 2}))
    await client.get(f"{API}/meta/object/customer", headers=AUTH)
    faults.delay = 0.1
    responses = await asyncio.gather(*(client.get(FIND, headers=AUTH) for _ in range(8)))
    assert [r.status for r in responses] == [200] * 8
    assert sandbox.app[LOAD].peak == 2


async def test_a_customer_update_is_retried_after_a_timeout(
    gw: Any, faults: Faults, store: Store, sandbox: Any
) -> None:
    faults.delay_after, faults.method, faults.times = 0.7, "PUT", 1
    body = {"notes": "Retried once.", "email": "john.smith@example.com"}
    resp = await gw.patch(f"{API}/customer/1002", json=body, headers=AUTH)
    assert resp.status == 201 and (await resp.json())["notes"] == "Retried once."
    assert sum(c == "PUT /api/v2/users/1002" for c in sandbox.app[CALLS]) == 2
    emails = [i for i in store.user_identities(1002) if i["type"] == "email"]
    assert len(emails) == 2  # the old one and the new one, not the new one twice
