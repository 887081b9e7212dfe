"""Best match from every signal, through the real HTTP stack against the sandbox (docs/behaviour.md
§1.6): a case number, an order number, an account number, a profile URL on any network; scored,
best first, each customer once, re-checked, and bounded in how far it fans out."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from conftest import API, AUTH, events

from gateway.config import Config
from gateway.mapping.fanout import FanOutLimits
from gateway.sandbox.server import CALLS, Faults
from gateway.sandbox.store import Store

JANE, JOHN, ROE = "1001", "1002", "1003"


async def best(client: Any, body: dict[str, Any]) -> list[str]:
    resp = await client.post(f"{API}/customer/bestmatch", json=body, headers=AUTH)
    assert resp.status == 200, await resp.text()
    return [c["id"] for c in await resp.json()]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ({"caseNumbers": ["5001"]}, [JANE]),
        ({"caseNumbers": ["#5002", "999999", "../users/1002"]}, [JANE]),
        ({"accountNumbers": "CRM-1001"}, [JANE]),
        ({"accountNumbers": ["crm-1001"]}, [JANE]),  # external ids are case-insensitive
        ({"orderNumbers": ["A-1001"]}, [JANE]),
        ({"profileUrl": "https://www.facebook.com/profile.php?id=100004242"}, [JOHN]),
        ({"profileUrl": "https://m.facebook.com/people/John-Smith/100004242/"}, [JOHN]),
        ({"profileUrl": "https://instagram.com/jane.roe/"}, [ROE]),
        ({"profileUrl": "https://x.com/janedoe/status/1"}, [JANE]),
        ({"screenName": "@jane.roe", "service": "instagram"}, [ROE]),
    ],
)
async def test_one_signal_alone_finds_the_customer(
    client: Any, body: dict[str, Any], found: list[str]
) -> None:
    assert await best(client, body) == found


@pytest.mark.parametrize(
    "body",
    [
        {"orderNumbers": ["A-100", "A-10011", "1001"]},  # fuzzy search hits, re-checked away
        {"caseNumbers": ["0", "5001x", "-", "5001 OR 1"]},
        {"accountNumbers": ["CRM-100", "CRM"]},
        {"profileUrl": "https://www.instagram.com/jane.roe.x/"},
        {"profileUrl": "https://www.tiktok.com/@janedoe"},  # no strategy for TikTok
        {"screenName": "janedoe"},  # a handle on no known network
        {"profileUrl": "https://www.linkedin.com/in/100004242"},
    ],
)
async def test_a_near_miss_finds_no_one(client: Any, body: dict[str, Any]) -> None:
    assert await best(client, body) == []


async def test_an_exact_email_scores_above_a_namesake(client: Any, store: Store) -> None:
    namesake = store.create_user({"name": "Jane Doe", "email": "other.jane@example.com"})
    found = await best(client, {"displayName": "Jane Doe", "email": "jane@example.com"})
    assert found == [JANE, str(namesake["id"])]  # 110 above 10


async def test_scores_add_up_across_strategies_and_each_customer_comes_once(client: Any) -> None:
    # Jane Roe's email is the first strategy (100); John's phone (100) and name (10) outscore
    # it, although the phone strategy comes later.
    body = {"email": "jane.roe@example.com", "phoneNumbers": ["+1 555 123 4567"],
            "displayName": "John Smith"}  # fmt: skip
    assert await best(client, body) == [JOHN, ROE]
    every = {"email": "jane@example.com", "caseNumbers": ["5001", "5002"],
             "orderNumbers": ["A-1001"], "accountNumbers": "CRM-1001",
             "phoneNumbers": ["+41 79 123 45 67"], "profileUrl": "https://twitter.com/janedoe",
             "displayName": "Jane Doe"}  # fmt: skip
    assert await best(client, every) == [JANE]


async def test_the_scores_are_logged(client: Any, capsys: Any) -> None:
    await best(client, {"caseNumbers": ["5001"], "displayName": "Jane Doe"})
    scored = [e for e in events(capsys.readouterr().out) if e["event"] == "bestmatch_scored"]
    assert scored[-1]["candidates"] == [{"id": JANE, "score": 110, "by": ["case", "name"]}]


async def test_a_ticket_out_of_the_search_index_is_not_found_yet(client: Any, store: Store) -> None:
    """Zendesk's search lags writes: an order number just written is found once indexed."""
    await client.get(f"{API}/meta/object/case", headers=AUTH)
    now = [1000.0]
    store.clock, store.index_lag = (lambda: now[0]), 60.0
    made = await client.post(
        f"{API}/case", json={"customerId": JOHN, "title": "New order", "orderNumber": "B-7"},
        headers=AUTH,
    )  # fmt: skip
    assert made.status == 201
    assert await best(client, {"orderNumbers": ["B-7"]}) == []
    now[0] += 61
    assert await best(client, {"orderNumbers": ["B-7"]}) == [JOHN]


async def test_a_case_whose_requester_is_gone_finds_no_one(client: Any, store: Store) -> None:
    del store.users[1002]
    ticket, _ = store.create_ticket(
        {"requester_id": 1001, "subject": "x", "comment": {"body": "y"}}, None
    )
    store.tickets[ticket["ticket"]["id"]]["requester_id"] = 1002
    assert await best(client, {"caseNumbers": [str(ticket["ticket"]["id"])]}) == []


async def test_a_failing_lookup_fails_the_whole_answer(gw: Any, faults: Faults) -> None:
    faults.path_prefix, faults.status = "/api/v2/search", 500
    resp = await gw.post(
        f"{API}/customer/bestmatch",
        json={"email": "jane@example.com", "orderNumbers": ["A-1001"]},
        headers=AUTH,
    )
    assert resp.status == 502  # not a partial answer: the agent would create a duplicate


# -- bounded: how far one best match fans out ----------------------------------------------------


def calls(sandbox: Any) -> list[str]:
    return list(sandbox.app[CALLS])


async def warm(client: Any) -> None:
    """Field definitions cached, so that only best match's own calls are counted."""
    for kind in ("customer", "case"):
        assert (await client.get(f"{API}/meta/object/{kind}", headers=AUTH)).status == 200


def many(n: int) -> dict[str, Any]:
    """A body with many values of each kind, the real ones first."""
    return {
        "email": "jane@example.com",
        "accountNumbers": [f"ACC-{i}" for i in range(n)],
        "caseNumbers": ["5001"] + [str(900000 + i) for i in range(n)],
        "orderNumbers": ["A-1001"] + [f"Z-{i}" for i in range(n)],
        "phoneNumbers": [f"+4179{i:07d}" for i in range(n)],
        "profileUrl": "https://x.com/janedoe",
        "screenName": "janedoe",
        "displayName": "Jane Doe",
    }


async def test_a_best_match_with_1000_numbers_makes_at_most_the_configured_calls(
    client: Any, sandbox: Any, capsys: Any
) -> None:
    await warm(client)
    before = len(calls(sandbox))
    numbers = [f"+4179{n:07d}" for n in range(999)] + ["+41791234567"]
    body = {"phoneNumbers": numbers, "email": "jane@example.com", "displayName": "John Smith"}
    # email and name are searched; of the numbers, the first five only (Jane's is 1000th).
    assert await best(client, body) == [JANE, JOHN]
    made = calls(sandbox)[before:]
    assert len(made) == sum("/api/v2/users/search" in c for c in made) == 7 <= 12
    limited = [e for e in events(capsys.readouterr().out) if e["event"] == "bestmatch_limited"]
    assert limited[0]["searches"] == 7 and limited[0]["ignored_values"] == 995


async def test_many_values_of_each_kind_make_at_most_the_configured_calls(
    client: Any, sandbox: Any, capsys: Any
) -> None:
    await warm(client)
    before = len(calls(sandbox))
    assert await best(client, many(999)) == [JANE]
    made = calls(sandbox)[before:]
    # 12 lookups (the default max_searches), one call each: every strategy's first value,
    # then the second ones, in rounds. The case and the order lead to Jane, found already.
    assert len(made) == 12, made
    # email, 3 account numbers, 2 phone numbers, the handle and the name
    assert sum("/api/v2/users/search" in c for c in made) == 8
    assert sum(c.startswith("GET /api/v2/tickets/") for c in made) == 2  # 5001, 900000
    assert sum(c == "GET /api/v2/search" for c in made) == 2  # A-1001, Z-0
    limited = [e for e in events(capsys.readouterr().out) if e["event"] == "bestmatch_limited"]
    values = 999 + 1000 + 1000 + 999 + 3  # accounts, cases, orders, phones; email, handle, name
    assert limited[0]["searches"] == 12 and limited[0]["ignored_values"] == values - 12


async def test_customers_found_through_cases_are_read_once_each_and_bounded(
    make_client: Any, config: Config, sandbox: Any, store: Store
) -> None:
    for n in range(6):  # six tickets of six customers, one order number
        user = store.create_user({"name": f"Buyer {n}"})
        order = [{"id": 360001, "value": "SHARED-1"}]
        ticket = {"requester_id": user["id"], "subject": "Order", "custom_fields": order}
        store.create_ticket({**ticket, "comment": {"body": "x"}}, None)
    client = await make_client(
        dataclasses.replace(config, bestmatch=FanOutLimits(values_per_strategy=5, max_searches=4))
    )
    await warm(client)
    before = len(calls(sandbox))
    found = await best(client, {"orderNumbers": ["SHARED-1"], "caseNumbers": ["5001"]})
    made = calls(sandbox)[before:]
    assert len(found) == 4 and len(made) == 2 + 4  # two lookups, then four customers read
    assert len(set(found)) == 4


async def test_racing_best_matches_are_each_bounded(
    make_client: Any, config: Config, sandbox: Any
) -> None:
    tight = dataclasses.replace(
        config, bestmatch=FanOutLimits(values_per_strategy=50, max_searches=3)
    )
    client = await make_client(tight)
    await warm(client)
    before = len(calls(sandbox))
    answers = await asyncio.gather(
        *(client.post(f"{API}/customer/bestmatch", json=many(999), headers=AUTH) for _ in range(10))
    )
    assert [a.status for a in answers] == [200] * 10
    # email, an account number and the case (which leads to Jane, found by email), each time
    assert len(calls(sandbox)) - before == 10 * 3
