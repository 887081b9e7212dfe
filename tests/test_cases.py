"""Cases written exactly once (gateway/mapping/cases.py, docs/behaviour.md §1.7): racing
updates, long histories, many cases, media-only and marker-holding interactions, repeated
creates, moving a case. On every upstream (`upstream` fixture, conftest), then the sandbox's
own levers: audits, write sizes, lost answers, the page cap."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from conftest import API, AUTH, Upstream, budgets, events, interaction, ok, someone, tuned

from gateway.reloading import HOLDER
from gateway.sandbox.server import Faults
from gateway.sandbox.store import Store


async def customer(upstream: Upstream) -> str:
    made = await ok(
        await upstream.client.post(f"{API}/customer", json=someone(), headers=AUTH), 201
    )
    return str(made["id"])


def once_each(texts: list[str], ids: list[str]) -> dict[str, int]:
    """How often each interaction's marker is on the case (1 each, or it is wrong)."""
    joined = "\n".join(texts)
    return {i: joined.count(f"[khoros:twitter:{i}]") for i in ids}


async def test_racing_updates_right_after_the_create_add_each_interaction_once(
    upstream: Upstream, store: Store
) -> None:
    store.limits.account_per_minute = 2500  # an account with the High Volume add-on
    c, who = upstream.client, await customer(upstream)
    for rep in range(20):
        ids = [f"{rep}-{n}" for n in range(6)]
        body = {"customerId": who, "title": f"Race {rep}", "interactions": [interaction(ids[0])]}
        case = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
        # Ten updates at once, in the create's second, each overlapping the others.
        patches = [{"interactions": [interaction(ids[k % 6]), interaction(ids[(k + 1) % 6])]}
                   for k in range(10)]  # fmt: skip
        answers = await asyncio.gather(
            *(c.patch(f"{API}/case/{case['id']}", json=p, headers=AUTH) for p in patches)
        )
        assert [a.status for a in answers] == [200] * 10
        counts = once_each(await upstream.comments(case["id"]), ids)
        assert counts == dict.fromkeys(ids, 1), (upstream.name, rep, counts)
        read = await ok(await c.get(f"{API}/case/{case['id']}", headers=AUTH))
        assert sorted(i["serviceId"] for i in read["interactions"]) == sorted(ids)


async def test_a_case_with_a_long_history_still_gets_each_interaction_once(
    upstream: Upstream,
) -> None:
    c = upstream.client
    body = {
        "customerId": await customer(upstream),
        "title": "Long",
        "interactions": [interaction("h1")],
    }
    case = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    await upstream.add_replies(case["id"], 160)
    late = {"interactions": [interaction("h2")]}  # recorded after the 160 replies: page 2
    await ok(await c.patch(f"{API}/case/{case['id']}", json=late, headers=AUTH))
    again = {"interactions": [interaction("h1"), interaction("h2"), interaction("h3")]}
    for _ in range(2):
        await ok(await c.patch(f"{API}/case/{case['id']}", json=again, headers=AUTH))
    texts = await upstream.comments(case["id"])
    assert len(texts) >= 160
    assert once_each(texts, ["h1", "h2", "h3"]) == {"h1": 1, "h2": 1, "h3": 1}
    read = await ok(await c.get(f"{API}/case/{case['id']}", headers=AUTH))  # every page
    assert [i["serviceId"] for i in read["interactions"]] == ["h1", "h2", "h3"]


async def test_every_case_of_a_customer_newest_first(upstream: Upstream) -> None:
    c, who = upstream.client, await customer(upstream)
    await upstream.add_cases(who, 124)
    body = {"customerId": who, "title": "The newest", "interactions": [interaction("n1")]}
    newest = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    cases = await ok(await c.get(f"{API}/customer/{who}/cases", headers=AUTH))
    assert len(cases) == 125 and len({x["id"] for x in cases}) == 125
    assert cases[0]["id"] == newest["id"]
    stamps = [x["lastUpdated"] for x in cases]
    assert stamps == sorted(stamps, reverse=True)


async def test_a_media_only_interaction_makes_a_case(upstream: Upstream) -> None:
    photo = interaction("m1", "", contentType="photo")
    body = {"customerId": await customer(upstream), "title": "A photo", "interactions": [photo]}
    case = await ok(await upstream.client.post(f"{API}/case", json=body, headers=AUTH), 201)
    text = "\n".join(await upstream.comments(case["id"]))
    assert "(photo without text)" in text and photo["linkUrl"] in text


async def test_a_text_holding_a_marker_suppresses_nothing(upstream: Upstream) -> None:
    c = upstream.client
    forged = interaction("f1", "Look: [khoros:twitter:f2] [khoros:twitter:f3]")
    forged["author"]["name"] = "[khoros:twitter:f4]"
    body = {"customerId": await customer(upstream), "title": "[khoros:twitter:f5]",
            "interactions": [forged]}  # fmt: skip
    case = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    real = {"interactions": [interaction(i) for i in ("f2", "f3", "f4", "f5")]}
    await ok(await c.patch(f"{API}/case/{case['id']}", json=real, headers=AUTH))
    texts = await upstream.comments(case["id"])
    assert once_each(texts, ["f1", "f2", "f3", "f4", "f5"]) == dict.fromkeys(
        ["f1", "f2", "f3", "f4", "f5"], 1
    )
    assert "Look: [\u2060khoros:twitter:f2]" in "\n".join(texts)  # reads as sent


async def test_repeated_creates_find_their_case_and_apply_new_values(
    upstream: Upstream, caplog: Any
) -> None:
    c = upstream.client
    body = {"customerId": await customer(upstream), "title": "Repeated", "status": "open",
            "interactions": [interaction("r1")]}  # fmt: skip
    first = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    same = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    assert same["id"] == first["id"] and same["status"] == "open"
    changed = await ok(
        await c.post(f"{API}/case", json={**body, "status": "closed"}, headers=AUTH), 201
    )
    assert changed["id"] == first["id"] and changed["status"] == "closed"
    again = await ok(await c.get(f"{API}/case/{first['id']}", headers=AUTH))
    assert again["status"] == "closed"
    assert once_each(await upstream.comments(first["id"]), ["r1"]) == {"r1": 1}
    cases = await ok(await c.get(f"{API}/customer/{body['customerId']}/cases", headers=AUTH))
    assert [x["id"] for x in cases] == [first["id"]]


async def test_customer_id_on_an_update_moves_the_case(upstream: Upstream) -> None:
    c = upstream.client
    one, two = await customer(upstream), await customer(upstream)
    body = {"customerId": one, "title": "Moving", "interactions": [interaction("mv")]}
    case = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    moved = await ok(
        await c.patch(f"{API}/case/{case['id']}", json={"customerId": two}, headers=AUTH)
    )
    assert moved["customerId"] == two
    assert [
        x["id"] for x in await ok(await c.get(f"{API}/customer/{two}/cases", headers=AUTH))
    ] == [case["id"]]
    assert await ok(await c.get(f"{API}/customer/{one}/cases", headers=AUTH)) == []
    for nobody in ("987654", "no/such"):
        resp = await c.patch(f"{API}/case/{case['id']}", json={"customerId": nobody}, headers=AUTH)
        assert resp.status == 404, nobody


async def test_a_case_without_interactions_is_the_same_case_only_when_repeated_whole(
    upstream: Upstream,
) -> None:
    c = upstream.client
    body = {"customerId": await customer(upstream), "title": f"Call back {uuid.uuid4().hex[:6]}",
            "orderNumber": "A-1"}  # fmt: skip
    first = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    same = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    assert same["id"] == first["id"]
    # A customer and a title name no one case: other values are another case.
    other = await ok(
        await c.post(f"{API}/case", json={**body, "orderNumber": "A-2"}, headers=AUTH), 201
    )
    assert other["id"] != first["id"] and other["orderNumber"] == "A-2"
    kept = await ok(await c.get(f"{API}/case/{first['id']}", headers=AUTH))
    assert kept["orderNumber"] == "A-1"


async def test_a_closed_case_is_neither_changed_nor_reopened_by_a_repeat(
    upstream: Upstream,
) -> None:
    c, who = upstream.client, await customer(upstream)
    with_them = {
        "customerId": who,
        "title": f"Closed {uuid.uuid4().hex[:6]}",
        "orderNumber": "B-1",
        "interactions": [interaction(uuid.uuid4().hex[:8])],
    }
    without = {"customerId": who, "title": f"Closed {uuid.uuid4().hex[:6]}", "orderNumber": "B-1"}
    for body in (with_them, without):  # fmt: skip
        case = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
        path = f"{API}/case/{case['id']}"
        await ok(await c.patch(path, json={"status": "closed"}, headers=AUTH))
        repeats = [body, {**body, "orderNumber": "B-2"}] if "interactions" in body else [body]
        for repeat in repeats:
            resp = await c.post(f"{API}/case", json=repeat, headers=AUTH)
            assert resp.status == 409, await resp.text()
            refused = await resp.json()
            assert refused["error"] == "CaseClosed" and case["id"] in refused["message"]
        now = await ok(await c.get(path, headers=AUTH))
        assert (now["status"], now["orderNumber"]) == ("closed", "B-1")


# -- the sandbox's levers ----------------------------------------------------------------------


def recorded(store: Store, case_id: str) -> list[str]:
    """The interaction keys the audits of a ticket hold."""
    return [
        key["key"]
        for audit in store.audits[int(case_id)]
        for key in audit["metadata"]["custom"].get("khoros", [])
    ]


async def test_keys_are_recorded_in_audits_and_many_take_several_writes(
    client: Any, store: Store
) -> None:
    many = [interaction(f"k{n}") for n in range(60)]
    body = {"customerId": "1001", "title": "Sixty", "interactions": many}
    case = await ok(await client.post(f"{API}/case", json=body, headers=AUTH), 201)
    keys = recorded(store, case["id"])
    assert sorted(keys) == sorted(f"twitter:k{n}" for n in range(60))
    assert len(store.audits[int(case["id"])]) > 1  # 1 KB of metadata per audit
    for audit in store.audits[int(case["id"])]:
        assert len(json.dumps(audit["metadata"]["custom"])) <= 1024
    read = await ok(await client.get(f"{API}/case/{case['id']}", headers=AUTH))
    assert [i["serviceId"] for i in read["interactions"]] == [f"k{n}" for n in range(60)]
    assert {i["author"]["serviceId"] for i in read["interactions"]} == {"99"}
    again = await client.post(f"{API}/case", json=body, headers=AUTH)
    assert (await again.json())["id"] == case["id"] and sorted(
        recorded(store, case["id"])
    ) == sorted(keys)


async def test_a_lost_answer_makes_the_update_read_again_not_write_again(
    client: Any, store: Store, monkeypatch: Any, capsys: Any
) -> None:
    """The write is applied but its answer is a 503: not written again blind (the stamp has
    whole seconds, so a repeat would pass), but read again: the audits show it is there."""
    from gateway.sandbox.rules import ZendeskError

    original = store.update_ticket

    def applied_then_lost(id: int, data: dict[str, Any]) -> dict[str, Any]:
        monkeypatch.setattr(store, "update_ticket", original)  # once
        original(id, data)
        raise ZendeskError(503, {"error": "ServiceUnavailable", "description": "lost"})

    monkeypatch.setattr(store, "update_ticket", applied_then_lost)
    body = {"interactions": [interaction("lost")]}
    resp = await client.patch(f"{API}/case/5001", json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert recorded(store, "5001").count("twitter:lost") == 1
    restarts = [e for e in events(capsys.readouterr().out) if e["event"] == "operation_restart"]
    assert [e["reason"] for e in restarts] == ["outcome_unknown"]


async def test_the_page_cap_refuses_an_update_but_lists_what_it_read(
    editable_files: Any, make_client: Any, sandbox: Any, store: Store, capsys: Any
) -> None:
    from conftest import gateway_env

    from gateway.config import load_config

    config_file, mapping = editable_files
    text = mapping.read_text().replace("max_pages: 100}", "max_pages: 1}")
    mapping.write_text(text)
    url = str(sandbox.make_url("")).rstrip("/")
    client = await make_client(load_config(config_file, env=gateway_env(url)))
    for n in range(101):
        store.update_ticket(5001, {"comment": {"body": f"reply {n}"}})
        store.create_ticket(
            {"requester_id": 1003, "subject": f"c{n}", "comment": {"body": "b"}}, None
        )
    resp = await client.patch(
        f"{API}/case/5001", json={"interactions": [interaction("cap")]}, headers=AUTH
    )
    assert resp.status == 502
    assert all("[khoros:twitter:cap]" not in c["body"] for c in store.comments[5001])
    cases = await ok(await client.get(f"{API}/customer/1003/cases", headers=AUTH))
    assert len(cases) == 100  # the first page of 101
    capped = [e for e in events(capsys.readouterr().out) if e["event"] == "pagination_capped"]
    assert [(e["step"], e["outcome"]) for e in capped] == [
        ("audits", "refused"),
        ("tickets", "partial"),
    ]


async def test_a_changed_repeat_on_another_replica_applies_its_values(
    make_client: Any, config: Any, store: Store, capsys: Any
) -> None:
    one, two = await make_client(config), await make_client(config)
    body = {"customerId": "1001", "title": "Two replicas", "priority": "low",
            "interactions": [interaction("rep")]}  # fmt: skip
    first = await ok(await one.post(f"{API}/case", json=body, headers=AUTH), 201)
    # The other replica has no memory of it: Zendesk's idempotency key refuses the other body.
    changed = await ok(
        await two.post(f"{API}/case", json={**body, "priority": "high"}, headers=AUTH), 201
    )
    assert changed["id"] == first["id"] and changed["priority"] == "high"
    assert sum(t["subject"] == "Two replicas" for t in store.tickets.values()) == 1
    logged = [e["event"] for e in events(capsys.readouterr().out)]
    assert "idempotency_mismatch" in logged and "case_create_repeated" in logged


async def test_a_create_that_never_got_its_answer_finds_the_case_it_made(
    make_client: Any, config: Any, store: Store, faults: Faults, capsys: Any
) -> None:
    short = tuned(budgets(config, default=3.0), upstream={"attempt_timeout_seconds": 0.3})
    client = await make_client(short)
    await client.get(f"{API}/meta/object/case", headers=AUTH)
    # Every answer to a create comes after the attempt gave up; the first was applied.
    faults.method, faults.path_prefix, faults.delay_after = "POST", "/api/v2/tickets", 0.5
    body = {"customerId": "1001", "title": "Never answered", "interactions": [interaction("na")]}
    made = await ok(await client.post(f"{API}/case", json=body, headers=AUTH), 201)
    tickets = [t for t in store.tickets.values() if t["subject"] == "Never answered"]
    assert [str(t["id"]) for t in tickets] == [made["id"]]
    assert "case_create_found" in [e["event"] for e in events(capsys.readouterr().out)]


async def test_a_repeat_without_interactions_with_other_values_makes_a_new_case(
    make_client: Any, config: Any, store: Store, capsys: Any
) -> None:
    one, two = await make_client(config), await make_client(config)
    body = {"customerId": "1001", "title": "Same title", "priority": "low"}
    first = await ok(await one.post(f"{API}/case", json=body, headers=AUTH), 201)
    await ok(await one.patch(f"{API}/case/{first['id']}", json={"status": "closed"}, headers=AUTH))
    urgent = {**body, "priority": "urgent"}
    for client in (one, two):  # with its memory, and on a replica without it (Zendesk's key)
        made = await ok(await client.post(f"{API}/case", json=urgent, headers=AUTH), 201)
        assert made["id"] != first["id"] and made["priority"] == "urgent"
    earlier = store.tickets[int(first["id"])]
    assert (earlier["status"], earlier["priority"]) == ("solved", "low")
    assert sum(t["subject"] == "Same title" for t in store.tickets.values()) == 2
    assert "idempotency_mismatch" not in [e["event"] for e in events(capsys.readouterr().out)]


async def test_a_lost_create_without_a_key_is_refused_while_the_crm_may_yet_show_it(
    editable_files: Any, make_client: Any, sandbox: Any, store: Store, faults: Faults
) -> None:
    """On a CRM without idempotency keys (the sandbox with its keys off; the case's
    `settle_seconds` as RT5's), a create that lost its answer (a 500) and whose case is not
    among the customer's: the repeat is refused (503 CreatePending) while the CRM may still be
    finishing the write, and makes the case once past that time."""
    from conftest import gateway_env

    from gateway.config import load_config

    config_file, mapping = editable_files
    mapping.write_text(
        mapping.read_text().replace("    settle_seconds: 0\n", "    settle_seconds: 60\n")
    )
    store.idempotency_keys = False
    url = str(sandbox.make_url("")).rstrip("/")
    client = await make_client(load_config(config_file, env=gateway_env(url)))
    await client.get(f"{API}/meta/object/case", headers=AUTH)
    # The create and its retries (its key lets it retry; the CRM ignores it, as RT5 would).
    faults.method, faults.path_prefix, faults.times, faults.status = (
        "POST", "/api/v2/tickets", 3, 500
    )  # fmt: skip
    title = f"Lost {uuid.uuid4().hex[:8]}"
    body = {"customerId": "1001", "title": title, "interactions": [interaction(title)]}
    assert (await client.post(f"{API}/case", json=body, headers=AUTH)).status == 502
    for _ in range(2):
        resp = await client.post(f"{API}/case", json=body, headers=AUTH)
        assert resp.status == 503, await resp.text()
        assert (await resp.json())["error"] == "CreatePending"
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    writes = client.app[HOLDER].current.cases
    writes.clock = lambda: time.time() + 61  # past the time the CRM may take
    made = await ok(await client.post(f"{API}/case", json=body, headers=AUTH), 201)
    assert [str(t["id"]) for t in store.tickets.values() if t["subject"] == title] == [made["id"]]
