"""The upstream layers end to end, through the gateway's HTTP stack against the sandbox:
docs/behaviour.md §4's rows on rate limits that hold one record only, and on a breaker that
always recovers. Faults are injected into the sandbox; counts come from its call log."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

from conftest import API, AUTH, EF_AUTH, FAST_BUDGET, budgets, events, interaction, tuned

from gateway.config import Config
from gateway.sandbox.server import CALLS, Faults
from gateway.sandbox.store import Store
from gateway.upstream.settings import BreakerSettings

FIND = f"{API}/customer/1001"
PUT_1002 = "PUT /api/v2/users/1002"


def calls(sandbox: Any, call: str) -> int:
    return sandbox.app[CALLS].count(call)


def per_user_limit(faults: Faults, retry_after: str) -> None:
    """Zendesk's answer to a 6th update of user 1002 within a minute: a 429 while the account
    still has quota."""
    faults.status, faults.retry_after, faults.times = 429, retry_after, 1
    faults.method, faults.path_prefix = "PUT", "/api/v2/users/1002"
    faults.body = "You have exceeded the rate limit for updating a single unique user"
    faults.content_type = "text/plain"
    faults.headers = {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "650"}


async def test_after_one_customers_limit_other_customers_reads_and_writes_answer(
    gw: Any, faults: Faults, sandbox: Any
) -> None:
    per_user_limit(faults, retry_after="20")
    limited = await gw.patch(f"{API}/customer/1002", json={"notes": "6th"}, headers=AUTH)
    assert limited.status == 503 and limited.headers["Retry-After"] == "20"
    others = await asyncio.gather(
        gw.patch(FIND, json={"notes": "Still served."}, headers=AUTH),
        gw.get(FIND, headers=AUTH),
        gw.get(f"{API}/customer/1002", headers=AUTH),  # the limited customer's own read
        gw.get(f"{API}/customer/1001/cases", headers=AUTH),
        gw.patch(f"{API}/case/5001", json={"interactions": [interaction("rl")]}, headers=AUTH),
        gw.post(f"{API}/customers", json={"email": "jane@example.com"}, headers=AUTH),
        gw.get("/customer?query=phone:%2B41791234567", headers=EF_AUTH),
        gw.get("/label", headers=EF_AUTH),
    )
    assert [r.status for r in others] == [201, 200, 200, 200, 200, 200, 200, 200]
    before = calls(sandbox, PUT_1002)
    started = time.monotonic()
    again = await gw.patch(f"{API}/customer/1002", json={"notes": "7th"}, headers=AUTH)
    assert again.status == 503 and time.monotonic() - started < 0.5
    assert calls(sandbox, PUT_1002) == before  # held here: the CRM is not asked again


async def test_a_limit_that_fits_makes_only_that_write_wait(
    gw: Any, faults: Faults, sandbox: Any
) -> None:
    per_user_limit(faults, retry_after="1")

    async def timed(coro: Any) -> tuple[int, float]:
        started = time.monotonic()
        resp = await coro
        return resp.status, time.monotonic() - started

    update = asyncio.create_task(
        timed(gw.patch(f"{API}/customer/1002", json={"notes": "Waited."}, headers=AUTH))
    )
    while calls(sandbox, PUT_1002) == 0:  # until the 429 is in: user 1002's writes are held
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    others = await asyncio.gather(
        timed(gw.patch(FIND, json={"notes": "Not held."}, headers=AUTH)),
        timed(gw.get(f"{API}/customer/1002", headers=AUTH)),
    )
    assert [status for status, _ in others] == [201, 200]
    # Answered while user 1002's write still waits out its second; held, they would have
    # waited the 0.95 s left of it.
    assert not update.done() and all(took < 0.8 for _, took in others)
    status, took = await update
    assert status == 201 and 1.0 <= took < FAST_BUDGET
    assert calls(sandbox, PUT_1002) == 2


async def test_an_account_limit_holds_every_call(gw: Any, faults: Faults, sandbox: Any) -> None:
    faults.status, faults.retry_after, faults.times = 429, "20", 1
    faults.method, faults.path_prefix = "PUT", "/api/v2/users/1002"
    faults.headers = {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "0"}
    limited = await gw.patch(f"{API}/customer/1002", json={"notes": "x"}, headers=AUTH)
    assert limited.status == 503
    seen = len(sandbox.app[CALLS])
    assert (await gw.get(FIND, headers=AUTH)).status == 503
    assert len(sandbox.app[CALLS]) == seen


async def test_an_answer_over_the_size_cap_is_502_once_and_not_cached(
    make_client: Any, fast: Config, faults: Faults, sandbox: Any, capsys: Any
) -> None:
    """A CRM answering 2 MB of field definitions to a gateway that reads 1 MB at most: 502, the
    CRM asked once (it would be as large again), nothing cached, an operator's line."""
    client = await make_client(tuned(fast, upstream={"max_answer_bytes": 1_000_000}))
    faults.status, faults.path_prefix = 200, "/api/v2/user_fields"
    huge = [
        {"key": f"f{n}", "title": "x" * 1000, "type": "text", "active": True} for n in range(2000)
    ]
    faults.body = json.dumps({"user_fields": huge})
    meta = await client.get(f"{API}/meta/object/customer", headers=AUTH)
    assert meta.status == 502 and (await meta.json())["error"] == "BadGateway"
    assert calls(sandbox, "GET /api/v2/user_fields") == 1
    lines = [e for e in events(capsys.readouterr().out) if e["event"] == "upstream_too_large"]
    assert [(e["path"], e["limit_bytes"]) for e in lines] == [("/api/v2/user_fields", 1_000_000)]
    faults.status = None
    meta = await client.get(f"{API}/meta/object/customer", headers=AUTH)
    assert meta.status == 200 and calls(sandbox, "GET /api/v2/user_fields") == 2


# -- the breaker -----------------------------------------------------------------------------


async def test_a_burst_past_the_account_limit_reaches_the_crm_no_further_than_its_slots(
    make_client: Any, fast: Config, sandbox: Any, store: Store
) -> None:
    """100 reads at once against an account with 30 calls a minute left: once the CRM said
    429, the calls queued for an in-flight slot are held too, rather than each asking for a
    429 of its own. At most the calls in flight then (the slots) are refused by the CRM."""
    slots = 10
    client = await make_client(tuned(fast, upstream={"max_in_flight": slots}))
    store.limits.account_per_minute = 30
    left_before = quota_left(store)
    sent_before = len(sandbox.app[CALLS])
    answers = await asyncio.gather(*(client.get(FIND, headers=AUTH) for _ in range(100)))
    statuses = Counter(r.status for r in answers)
    assert set(statuses) == {200, 503} and statuses[200] >= 10, statuses
    accepted = left_before - quota_left(store)
    refused = len(sandbox.app[CALLS]) - sent_before - accepted  # the CRM's 429s
    assert 1 <= refused <= slots, (refused, statuses)


def quota_left(store: Store) -> int:
    """What the sandbox's account has left this minute, as its answers' headers say."""
    return int(store.limits.headers(store.clock())["X-Rate-Limit-Remaining"])


async def test_one_request_retried_to_exhaustion_does_not_open_the_breaker(
    make_client: Any, fast: Config, config: Config, faults: Faults, sandbox: Any
) -> None:
    defaults = {"circuit_breaker": config.upstream.circuit_breaker}
    client = await make_client(tuned(fast, upstream=defaults))
    assert (await client.get(f"{API}/meta/object/customer", headers=AUTH)).status == 200
    faults.status, faults.times = 500, 3
    assert (await client.get(FIND, headers=AUTH)).status == 502
    assert calls(sandbox, "GET /api/v2/users/1001") == 3
    assert (await client.get(FIND, headers=AUTH)).status == 200  # not 503: the CRM was asked
    assert calls(sandbox, "GET /api/v2/users/1001") >= 4


BREAKER = BreakerSettings(failure_rate=0.5, min_requests=2, window_seconds=30, cooldown_seconds=0.3)


async def opened(make_client: Any, fast: Config, faults: Faults) -> Any:
    """A gateway whose breaker has just opened."""
    client = await make_client(tuned(fast, upstream={"circuit_breaker": BREAKER}))
    for kind in ("customer", "case"):
        assert (await client.get(f"{API}/meta/object/{kind}", headers=AUTH)).status == 200
    faults.status = 500
    for _ in range(2):
        assert (await client.get(FIND, headers=AUTH)).status == 502
    assert (await client.get(FIND, headers=AUTH)).status == 503  # open: fails fast
    faults.status = None
    await asyncio.sleep(BREAKER.cooldown_seconds + 0.05)
    return client


async def test_a_probe_that_hangs_past_the_deadline_leaves_the_breaker_able_to_close(
    make_client: Any, fast: Config, faults: Faults
) -> None:
    # Attempts as long as the budget: the probe ends by the deadline, not by a retry.
    slow = tuned(budgets(fast, default=1.0), upstream={"attempt_timeout_seconds": 10})
    client = await opened(make_client, slow, faults)
    faults.delay = 30
    probe = await client.get(FIND, headers=AUTH)
    assert probe.status == 504
    faults.delay = 0
    await asyncio.sleep(BREAKER.cooldown_seconds + 0.05)  # the failed probe opened it again
    assert (await client.get(FIND, headers=AUTH)).status == 200
    assert (await client.get("/readyz?upstream=1")).status == 200


async def test_a_probe_answered_429_leaves_the_breaker_able_to_close(
    make_client: Any, fast: Config, faults: Faults
) -> None:
    client = await opened(make_client, fast, faults)
    per_user_limit(faults, retry_after="20")
    probe = await client.patch(f"{API}/customer/1002", json={"notes": "x"}, headers=AUTH)
    assert probe.status == 503
    assert (await client.get(FIND, headers=AUTH)).status == 200  # the next call probes, at once
    ready = await client.get("/readyz?upstream=1")
    assert ready.status == 200 and (await ready.json())["circuit"] == "closed"


async def test_readiness_reports_the_open_circuit(
    make_client: Any, fast: Config, faults: Faults
) -> None:
    client = await make_client(tuned(fast, upstream={"circuit_breaker": BREAKER}))
    faults.status = 500
    for _ in range(2):
        await client.get(FIND, headers=AUTH)
    ready = await client.get("/readyz")  # the gateway itself is ready: it answers 503 fast
    assert ready.status == 200 and (await ready.json())["circuit"] == "open"
    asked = await client.get("/readyz?upstream=1")
    body = await asked.json()
    assert asked.status == 503 and body["circuit"] == "open"
    assert body["reason"] == "ServiceUnavailable"
