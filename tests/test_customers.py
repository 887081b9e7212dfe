"""Customers found, created and updated once and whole (gateway/mapping/customers.py, docs/
behaviour.md §1.4, §1.6): an exact match far down a fuzzy search, values another customer
holds refused before anything is written, a create whose answer came late found again. On
every upstream (`upstream` fixture, conftest), then with the sandbox's faults."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from typing import Any

import pytest
from conftest import API, AUTH, Upstream, budgets, events, ok, someone, tuned

from gateway.config import Config
from gateway.reloading import HOLDER
from gateway.sandbox.server import CALLS, LOAD, Faults
from gateway.sandbox.store import Store


async def test_an_exact_match_far_down_a_fuzzy_search_is_found(upstream: Upstream) -> None:
    c, person = upstream.client, someone()
    # 149 others whose numbers hold this one (a fuzzy search finds them all), then the one.
    await upstream.add_customers([f"{person['phone']}{n:02d}" for n in range(149)])
    made = await ok(await c.post(f"{API}/customer", json=person, headers=AUTH), 201)
    await upstream.add_customers([f"{person['phone']}9{n}" for n in range(10)])
    found = await ok(
        await c.post(f"{API}/customers", json={"phone": person["phone"]}, headers=AUTH)
    )
    assert [x["id"] for x in found] == [made["id"]]
    best = {"phoneNumbers": [person["phone"]]}
    assert [
        x["id"]
        for x in await ok(await c.post(f"{API}/customer/bestmatch", json=best, headers=AUTH))
    ] == [made["id"]]


async def test_a_value_another_customer_holds_changes_nothing(upstream: Upstream) -> None:
    c = upstream.client
    holder = await ok(await c.post(f"{API}/customer", json=someone(), headers=AUTH), 201)
    other = await ok(await c.post(f"{API}/customer", json=someone(), headers=AUTH), 201)
    change = {"notes": "Must not be written.", "email": holder["email"]}
    for _ in range(2):  # the identical retry is refused the same way, and writes nothing
        resp = await c.patch(f"{API}/customer/{other['id']}", json=change, headers=AUTH)
        assert resp.status == 422, await resp.text()
        assert [f["name"] for f in (await resp.json())["fields"]] == ["email"]
    now = await ok(await c.get(f"{API}/customer/{other['id']}", headers=AUTH))
    assert "notes" not in now and now["email"] == other["email"]
    # A create with a value another customer holds is refused too; one holding every value
    # sent is that customer.
    taken = {**someone(), "email": holder["email"]}
    assert (await c.post(f"{API}/customer", json=taken, headers=AUTH)).status == 422
    same = {k: holder[k] for k in ("name", "email", "phone", "externalId")}
    assert (await ok(await c.post(f"{API}/customer", json=same, headers=AUTH), 201))[
        "id"
    ] == holder["id"]


# -- the sandbox's levers ----------------------------------------------------------------------


async def test_a_create_whose_answer_came_late_is_found_on_repeat(
    make_client: Any, config: Config, faults: Faults, store: Store, sandbox: Any, capsys: Any
) -> None:
    store.index_lag = 600  # and search cannot see it: only the gateway's memory can
    short = tuned(budgets(config, default=0.5), upstream={"attempt_timeout_seconds": 3.0})
    client = await make_client(short)
    await client.get(f"{API}/meta/object/customer", headers=AUTH)  # field definitions cached
    faults.method, faults.path_prefix, faults.times, faults.delay_after = (
        "POST", "/api/v2/users", 1, 1.0
    )  # fmt: skip
    person = {"name": "Late Answer", "email": "late@example.com"}
    first = await client.post(f"{API}/customer", json=person, headers=AUTH)
    assert first.status == 504
    # The create goes on past the caller's deadline, until the sandbox has answered it.
    while sandbox.app[LOAD].now or not any(
        u["email"] == person["email"] for u in store.users.values()
    ):
        await asyncio.sleep(0.02)
    again = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    users = [u for u in store.users.values() if u["email"] == "late@example.com"]
    assert [str(u["id"]) for u in users] == [again["id"]]
    assert sum(c == "POST /api/v2/users" for c in sandbox.app[CALLS]) == 1


async def test_the_identical_retry_of_a_failed_update_succeeds(
    client: Any, faults: Faults, store: Store
) -> None:
    faults.method, faults.path_prefix, faults.status = "PUT", "/api/v2/users/1002", 500
    change = {"notes": "Both or none.", "twitter": "@jsmith_new"}
    resp = await client.patch(f"{API}/customer/1002", json=change, headers=AUTH)
    assert resp.status == 502  # the identity was added, the notes were not
    faults.status = None
    made = await ok(await client.patch(f"{API}/customer/1002", json=change, headers=AUTH), 201)
    assert made["notes"] == "Both or none." and made["twitter"] == "jsmith_new"
    handles = [i["value"] for i in store.user_identities(1002) if i["type"] == "twitter"]
    assert handles == ["jsmith_new"]


async def test_a_search_by_a_unique_field_stops_at_the_match(
    client: Any, store: Store, sandbox: Any
) -> None:
    target = store.create_user({"name": "Same Name", "email": "same@example.com"})
    for n in range(250):
        store.create_user({"name": f"Same Name {n}", "email": f"same{n}@example.com"})
    before = len(sandbox.app[CALLS])
    found = await ok(
        await client.post(f"{API}/customers", json={"email": "same@example.com"}, headers=AUTH)
    )
    assert [x["id"] for x in found] == [str(target["id"])]
    searches = [c for c in sandbox.app[CALLS][before:] if "users/search" in c]
    assert len(searches) == 1  # the fuzzy result has 3 pages; the first holds the one
    by_name = await ok(
        await client.post(f"{API}/customers", json={"name": "same name"}, headers=AUTH)
    )
    assert len(by_name) == 251  # not unique: every page is read


async def test_a_create_identical_to_a_customer_logs_that_it_found_it(
    client: Any, capsys: Any
) -> None:
    jane = {"name": "Jane Doe", "email": "jane@example.com"}
    assert (await ok(await client.post(f"{API}/customer", json=jane, headers=AUTH), 201))[
        "id"
    ] == "1001"
    found = [e for e in events(capsys.readouterr().out) if e["event"] == "customer_create_repeated"]
    assert [e["customer"] for e in found] == ["1001"]


async def test_a_create_whose_answer_was_lost_finds_the_customer_by_its_email(
    make_client: Any, config: Config, faults: Faults, store: Store, capsys: Any
) -> None:
    client = await make_client(config)
    await client.get(f"{API}/meta/object/customer", headers=AUTH)
    faults.method, faults.path_prefix, faults.reset_after = "POST", "/api/v2/users", True
    person = {"name": "Never Answered", "email": "never@example.com"}
    made = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    users = [u for u in store.users.values() if u["email"] == person["email"]]
    assert [str(u["id"]) for u in users] == [made["id"]]
    assert "customer_create_found" in [e["event"] for e in events(capsys.readouterr().out)]


# -- creates of customers with no unique field: only the gateway can tell a repeat -----------


def nameless() -> dict[str, str]:
    """A customer with no unique value (no email, external id or handle): the CRM would take
    the same values twice."""
    return {"name": f"Plain {uuid.uuid4().hex[:8]}", "notes": "Only a name and notes."}


def holding(store: Store, person: dict[str, str]) -> list[str]:
    return [str(u["id"]) for u in store.users.values() if u["name"] == person["name"]]


async def short_client(make_client: Any, config: Config, budget: float, attempt: float) -> Any:
    """A gateway whose budget is ``budget`` and each attempt's cap ``attempt`` (also the grace
    a create runs on past its caller's deadline), the field definitions cached."""
    short = tuned(budgets(config, default=budget), upstream={"attempt_timeout_seconds": attempt})
    client = await make_client(short)
    await client.get(f"{API}/meta/object/customer", headers=AUTH)
    return client


async def test_a_create_answered_inside_the_budget_but_past_one_attempts_cap_is_answered(
    make_client: Any, config: Config, faults: Faults, store: Store
) -> None:
    client = await short_client(make_client, config, budget=1.5, attempt=0.4)
    # Applied at once, answered after 0.8 s: past one attempt's cap, inside the budget. A write
    # that cannot be repeated waits for its answer rather than give up at the cap.
    faults.method, faults.path_prefix, faults.times, faults.delay_after = (
        "POST", "/api/v2/users", 1, 0.8
    )  # fmt: skip
    person = nameless()
    made = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    again = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    assert again["id"] == made["id"] and holding(store, person) == [made["id"]]


@pytest.mark.parametrize("lost", ["reset_after", "status_after"])
async def test_a_create_applied_whose_answer_was_lost_is_found_not_made_again(
    lost: str, make_client: Any, config: Config, faults: Faults, store: Store, capsys: Any
) -> None:
    client = await short_client(make_client, config, budget=3.0, attempt=1.0)
    faults.method, faults.path_prefix, faults.times = "POST", "/api/v2/users", 1
    setattr(faults, lost, True if lost == "reset_after" else 500)  # applied, then lost
    person = nameless()
    made = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    again = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    assert again["id"] == made["id"] and holding(store, person) == [made["id"]]
    assert "customer_create_found" in [e["event"] for e in events(capsys.readouterr().out)]


async def test_a_create_unanswered_past_its_budget_and_grace_is_found_by_the_repeat(
    make_client: Any, config: Config, faults: Faults, store: Store, sandbox: Any
) -> None:
    client = await short_client(make_client, config, budget=0.6, attempt=0.3)
    # Applied at once, answered after 1.5 s: past the budget and the grace (0.9 s together).
    faults.method, faults.path_prefix, faults.times, faults.delay_after = (
        "POST", "/api/v2/users", 1, 1.5
    )  # fmt: skip
    person = nameless()
    assert (await client.post(f"{API}/customer", json=person, headers=AUTH)).status == 504
    while sandbox.app[LOAD].now:
        await asyncio.sleep(0.02)  # the gateway stopped waiting; the CRM is done too
    again = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    assert holding(store, person) == [again["id"]]


async def test_a_lost_create_the_search_cannot_see_yet_is_refused_not_made_again(
    make_client: Any, config: Config, faults: Faults, store: Store
) -> None:
    client = await short_client(make_client, config, budget=3.0, attempt=1.0)
    store.index_lag = 600  # Zendesk's search sees new users after seconds to minutes
    faults.method, faults.path_prefix, faults.times = "POST", "/api/v2/users", 1
    faults.reset_after = True
    person = nameless()
    assert (await client.post(f"{API}/customer", json=person, headers=AUTH)).status == 502
    # The repeat cannot rule out that the first made it: it says so, and makes nothing.
    for _ in range(2):
        resp = await client.post(f"{API}/customer", json=person, headers=AUTH)
        assert resp.status == 503, await resp.text()
        assert (await resp.json())["error"] == "CreatePending"
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert len(holding(store, person)) == 1
    later = time.monotonic() + 700
    store.clock = lambda: later  # the search sees it now: the repeat gets it
    again = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    assert holding(store, person) == [again["id"]]


async def test_a_lost_create_that_made_nothing_is_made_once_the_search_must_show_it(
    make_client: Any, config: Config, faults: Faults, store: Store
) -> None:
    client = await short_client(make_client, config, budget=3.0, attempt=1.0)
    faults.method, faults.path_prefix, faults.times, faults.status = (
        "POST", "/api/v2/users", 1, 500
    )  # fmt: skip
    person = nameless()
    assert (await client.post(f"{API}/customer", json=person, headers=AUTH)).status == 502
    assert (await client.post(f"{API}/customer", json=person, headers=AUTH)).status == 503
    writes = client.app[HOLDER].current.customers
    settle = writes.engine.mapping.objects["customer"].settle_seconds
    writes.clock = lambda: time.time() + settle + 1  # past the time the search may lag
    made = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    assert holding(store, person) == [made["id"]]


@pytest.mark.parametrize("failure", ["refused", "unreachable"])
async def test_a_create_that_made_nothing_for_sure_is_made_by_the_repeat_at_once(
    failure: str, make_client: Any, config: Config, faults: Faults, store: Store
) -> None:
    """A create the CRM refused (a 403) or that could not connect to it made nothing, and the
    gateway knows it: the repeat makes the customer at once, never 503 `CreatePending`."""
    client = await short_client(make_client, config, budget=3.0, attempt=1.0)
    transport = client.app[HOLDER].current.customers.engine.upstream.transport
    crm = transport.base_url
    if failure == "refused":
        faults.method, faults.path_prefix, faults.times, faults.status = (
            "POST", "/api/v2/users", 1, 403
        )  # fmt: skip
    else:
        with socket.socket() as s:  # a port nobody listens on: the CRM is being restarted
            s.bind(("127.0.0.1", 0))
            transport.base_url = f"http://127.0.0.1:{s.getsockname()[1]}"
    person = nameless()
    assert (await client.post(f"{API}/customer", json=person, headers=AUTH)).status == 502
    transport.base_url = crm
    made = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    assert holding(store, person) == [made["id"]]


async def test_a_lost_create_is_not_taken_for_an_older_or_a_wider_namesake(
    make_client: Any, config: Config, faults: Faults, store: Store
) -> None:
    client = await short_client(make_client, config, budget=3.0, attempt=1.0)
    person = nameless()
    older = store.create_user(dict(person))
    older["created_at"] = "2020-01-01T00:00:00Z"  # the same values, made long before
    wider = store.create_user({**person, "name": f"{person['name']} Smith"})  # made just now
    faults.method, faults.path_prefix, faults.times, faults.status = (
        "POST", "/api/v2/users", 1, 500
    )  # fmt: skip
    assert (await client.post(f"{API}/customer", json=person, headers=AUTH)).status == 502
    assert (await client.post(f"{API}/customer", json=person, headers=AUTH)).status == 503
    writes = client.app[HOLDER].current.customers
    settle = writes.engine.mapping.objects["customer"].settle_seconds
    writes.clock = lambda: time.time() + settle + 1
    made = await ok(await client.post(f"{API}/customer", json=person, headers=AUTH), 201)
    assert made["id"] not in (str(older["id"]), str(wider["id"]))
    assert sorted(holding(store, person)) == sorted([str(older["id"]), made["id"]])
