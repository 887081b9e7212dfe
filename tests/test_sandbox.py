"""The sandbox stays honest: its answers validate against Zendesk's official OpenAPI, and its
search, errors, timestamps, pagination, audits and rate limits behave as docs/sandbox.md
describes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import SPECS
from openapi_schema_validator import OAS30Validator

AUTH = {"Authorization": "Bearer sandbox-oauth-token"}


@pytest.fixture(scope="session")
def oas() -> dict[str, Any]:
    """The operations the sandbox serves, excerpted from Zendesk's official OpenAPI."""
    spec: dict[str, Any] = json.loads((SPECS / "zendesk-support-oas.excerpt.json").read_text())
    return spec


def check(oas: dict[str, Any], operation_id: str, status: int, body: Any) -> None:
    for item in oas["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
                OAS30Validator({"components": oas["components"], "allOf": [schema]}).validate(body)
                return
    raise AssertionError(f"no operation {operation_id}")


async def test_responses_match_the_official_openapi(sandbox: Any, oas: dict[str, Any]) -> None:
    async def call(method: str, path: str, operation_id: str, status: int, **kw: Any) -> Any:
        resp = await sandbox_client.request(method, path, headers=AUTH, **kw)
        assert resp.status == status, await resp.text()
        body = await resp.json()
        check(oas, operation_id, status, body)
        return body

    from aiohttp import ClientSession

    async with ClientSession(base_url=str(sandbox.make_url(""))) as sandbox_client:
        await call("GET", "/api/v2/users/1001", "ShowUser", 200)
        await call("GET", "/api/v2/users/search?query=jane", "SearchUsers", 200)
        await call("GET", "/api/v2/user_fields", "ListUserFields", 200)
        await call("GET", "/api/v2/ticket_fields", "ListTicketFields", 200)
        await call("GET", "/api/v2/users/1001/identities", "ListUserIdentities", 200)
        user = await call(
            "POST",
            "/api/v2/users",
            "CreateUser",
            201,
            json={"user": {"name": "Oas Check", "email": "oas@example.com"}},
        )
        uid = user["user"]["id"]
        await call("PUT", f"/api/v2/users/{uid}", "UpdateUser", 200, json={"user": {"notes": "n"}})
        await call(
            "POST",
            f"/api/v2/users/{uid}/identities",
            "CreateUserIdentity",
            201,
            json={"identity": {"type": "twitter", "value": "oascheck"}},
        )
        ticket = await call(
            "POST",
            "/api/v2/tickets",
            "CreateTicket",
            201,
            json={"ticket": {"requester_id": uid, "subject": "s", "comment": {"body": "b"}}},
        )
        tid = ticket["ticket"]["id"]
        await call("GET", f"/api/v2/tickets/{tid}", "ShowTicket", 200)
        await call(
            "PUT",
            f"/api/v2/tickets/{tid}",
            "UpdateTicket",
            200,
            json={"ticket": {"comment": {"body": "c", "public": False}}},
        )
        await call("GET", f"/api/v2/tickets/{tid}/comments", "ListTicketComments", 200)
        cursor = {"params": {"page[size]": "1"}}
        await call("GET", f"/api/v2/tickets/{tid}/comments", "ListTicketComments", 200, **cursor)
        await call("GET", f"/api/v2/tickets/{tid}/audits", "ListAuditsForTicket", 200, **cursor)
        await call("GET", f"/api/v2/users/{uid}/tickets/requested", "ListTickets", 200)
        await call("GET", "/api/v2/search?query=type:ticket%20crushed", "ListSearchResults", 200)
        await call("GET", "/api/v2/search?query=jane", "ListSearchResults", 200)


async def test_search_is_fuzzy_and_knows_the_syntax(sandbox: Any) -> None:
    from aiohttp import ClientSession

    async def names(query: str) -> list[str]:
        async with (
            ClientSession() as s,
            s.get(
                sandbox.make_url("/api/v2/users/search"), params={"query": query}, headers=AUTH
            ) as r,
        ):
            return sorted(u["name"] for u in (await r.json())["users"])

    assert await names('email:"jane@example.com"') == ["Jane Doe", "Jane Roe"]  # fuzzy
    assert await names("type:user name:jane -name:roe") == ["Jane Doe"]
    assert await names("name:john name:roe") == ["Jane Roe", "John Smith"]  # same key ORs
    assert await names("vip_level:gold") == ["Jane Doe"]
    assert await names("janedoe") == ["Jane Doe"]  # identities are searched
    assert await names("name:j*h") == ["John Smith"]


async def test_errors_use_zendesk_envelopes(sandbox: Any, store: Any) -> None:
    from aiohttp import ClientSession

    async with ClientSession(base_url=str(sandbox.make_url(""))) as s:
        async with s.get("/api/v2/users/1") as r:
            assert r.status == 401 and await r.json() == {"error": "Couldn't authenticate you"}
        async with s.get("/api/v2/users/999", headers=AUTH) as r:
            assert r.status == 404 and (await r.json())["error"] == "RecordNotFound"
        async with s.post(
            "/api/v2/tickets", json={"ticket": {"requester_id": 1001}}, headers=AUTH
        ) as r:
            body = await r.json()
            assert (
                r.status == 422 and body["error"] == "RecordInvalid" and "base" in body["details"]
            )
        key = {**AUTH, "Idempotency-Key": "k1"}
        ticket = {"ticket": {"requester_id": 1001, "comment": {"body": "x"}}}
        async with s.post("/api/v2/tickets", json=ticket, headers=key) as r:
            assert r.headers["x-idempotency-lookup"] == "miss"
            first = (await r.json())["ticket"]["id"]
        async with s.post("/api/v2/tickets", json=ticket, headers=key) as r:
            assert r.headers["x-idempotency-lookup"] == "hit"
            assert (await r.json())["ticket"]["id"] == first
        ticket["ticket"]["subject"] = "changed"
        async with s.post("/api/v2/tickets", json=ticket, headers=key) as r:
            assert r.status == 400 and (await r.json())["error"] == "IdempotentRequestError"
        async with s.put(
            f"/api/v2/tickets/{first}",
            headers=AUTH,
            json={"ticket": {"safe_update": True, "updated_stamp": "2000-01-01T00:00:00Z"}},
        ) as r:
            assert r.status == 409


async def test_the_idempotency_lever_makes_it_a_crm_without_keys(sandbox: Any, store: Any) -> None:
    from aiohttp import ClientSession

    store.idempotency_keys = False
    key = {**AUTH, "Idempotency-Key": "k1"}
    ticket = {"ticket": {"requester_id": 1001, "comment": {"body": "x"}}}
    made = []
    async with ClientSession(base_url=str(sandbox.make_url(""))) as s:
        for _ in range(2):
            async with s.post("/api/v2/tickets", json=ticket, headers=key) as r:
                assert r.status == 201 and "x-idempotency-lookup" not in r.headers
                made.append((await r.json())["ticket"]["id"])
    assert made[0] != made[1] and store.idempotency == {}


async def test_index_lag_hides_new_users_from_search(sandbox: Any, store: Any) -> None:
    from aiohttp import ClientSession

    store.index_lag = 60
    store.create_user({"name": "Fresh Person", "email": "fresh@example.com"})
    async with (
        ClientSession() as s,
        s.get(
            sandbox.make_url("/api/v2/users/search"), params={"query": "fresh"}, headers=AUTH
        ) as r,
    ):
        assert (await r.json())["users"] == []


async def get(sandbox: Any, path: str, **params: str) -> tuple[int, Any, Any]:
    from aiohttp import ClientSession

    async with (
        ClientSession() as s,
        s.get(sandbox.make_url(path), params=params, headers=AUTH) as r,
    ):
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body, r.headers


async def test_updated_at_has_whole_seconds_so_two_writes_pass_safe_update(store: Any) -> None:
    for _ in range(3):  # until both writes fall inside one second (nearly always the first)
        stamp = store.update_ticket(5001, {"comment": {"body": "read"}})["ticket"]["updated_at"]
        guarded = {"safe_update": True, "updated_stamp": stamp}
        first = store.update_ticket(5001, {**guarded, "comment": {"body": "one"}})
        if first["ticket"]["updated_at"] == stamp:
            break
    assert stamp.endswith("Z") and "." not in stamp
    # Both were made against the same stamp: in one second Zendesk lets the second through.
    store.update_ticket(5001, {**guarded, "comment": {"body": "two"}})
    assert [c["body"] for c in store.comments[5001]][-2:] == ["one", "two"]


async def test_lists_page_by_offset_and_by_cursor(sandbox: Any, store: Any) -> None:
    for n in range(5):
        store.update_ticket(5001, {"comment": {"body": f"reply {n}"}})
    status, body, _ = await get(sandbox, "/api/v2/tickets/5001/comments", per_page="2", page="2")
    assert status == 200 and len(body["comments"]) == 2 and body["count"] == 6
    assert "page=3" in body["next_page"] and "page=1" in body["previous_page"]
    seen, params = [], {"page[size]": "4"}
    while True:
        status, body, _ = await get(sandbox, "/api/v2/tickets/5001/comments", **params)
        seen += [c["body"] for c in body["comments"]]
        assert "count" not in body and body["links"]["next"]  # next is given on the last page too
        if not body["meta"]["has_more"]:
            break
        params = {"page[size]": "4", "page[after]": body["meta"]["after_cursor"]}
    assert seen == ["The box was crushed."] + [f"reply {n}" for n in range(5)]
    assert (await get(sandbox, "/api/v2/tickets/5001/comments", **{"page[size]": "101"}))[0] == 400
    status, body, _ = await get(sandbox, "/api/v2/tickets/5001/comments", page="101")
    assert status == 400 and body["errors"][0]["code"] == "InvalidPaginationDepth"


async def test_requested_tickets_sort_as_zendesk_sorts_them(sandbox: Any, store: Any) -> None:
    store.tickets[5002]["updated_at"] = "2030-01-01T00:00:00Z"
    newest = {"page[size]": "100", "sort": "-updated_at"}
    _, body, _ = await get(sandbox, "/api/v2/users/1001/tickets/requested", **newest)
    assert [t["id"] for t in body["tickets"]] == [5002, 5001]
    # Offset sorting keys are ignored by cursor pages, as in Zendesk: id order.
    ignored = {"page[size]": "100", "sort_by": "updated_at", "sort_order": "desc"}
    _, body, _ = await get(sandbox, "/api/v2/users/1001/tickets/requested", **ignored)
    assert [t["id"] for t in body["tickets"]] == [5001, 5002]


async def test_user_search_pages_by_offset_and_stops_at_1000(sandbox: Any, store: Any) -> None:
    for n in range(1005):
        store.create_user({"name": f"Many Person{n}"})
    status, body, _ = await get(sandbox, "/api/v2/users/search", query="many", page="10")
    assert status == 200 and len(body["users"]) == 100 and body["count"] == 1005
    assert body["next_page"]  # given, though it leads past the limit
    status, body, _ = await get(sandbox, "/api/v2/users/search", query="many", page="11")
    assert status == 422 and body["error"] == "invalid"
    cursor = {"query": "many", "page[size]": "10"}
    assert (await get(sandbox, "/api/v2/users/search", **cursor))[0] == 400


async def test_ticket_search_is_as_fuzzy_as_user_search(sandbox: Any, store: Any) -> None:
    async def found(query: str, **more: str) -> list[tuple[str, int]]:
        status, body, _ = await get(sandbox, "/api/v2/search", query=query, **more)
        assert status == 200, body
        return [(r["result_type"], r["id"]) for r in body["results"]]

    store.create_ticket(
        {
            "requester_id": 1002,
            "subject": "Late parcel",
            "comment": {"body": "Where is it?"},
            "custom_fields": [{"id": 360001, "value": "A-10019"}],
        },
        None,
    )
    assert await found("type:ticket custom_field_360001:A-1001") == [
        ("ticket", 5001), ("ticket", 5003)]  # words match by prefix  # fmt: skip
    assert await found('type:ticket custom_field_360001:"A-10019"') == [("ticket", 5003)]
    assert await found("type:ticket 10019") == [("ticket", 5003)]  # digits inside numbers
    assert await found("type:ticket crushed") == [("ticket", 5001)]  # comments are searched
    assert await found("type:ticket requester:john@example.com") == [("ticket", 5003)]
    assert await found("type:ticket status:solved") == [("ticket", 5002)]
    assert await found("type:ticket order_no:A-1001") == []  # no such keyword: nothing
    assert await found("jane roe") == [("user", 1003)]  # no type: users and tickets
    assert await found("type:ticket parcel", sort_by="created_at") == [("ticket", 5003)]
    assert await found("type:organization acme") == []


async def test_ticket_search_lags_writes_and_stops_at_1000(sandbox: Any, store: Any) -> None:
    store.index_lag = 60
    store.create_ticket(
        {"requester_id": 1001, "subject": "Fresh", "comment": {"body": "new"}}, None
    )
    store.update_ticket(5001, {"comment": {"body": "Fresh reply"}})
    _, body, _ = await get(sandbox, "/api/v2/search", query="type:ticket fresh")
    assert body["results"] == [] and body["count"] == 0  # neither is indexed yet
    store.index_lag = 0
    for n in range(1005):
        store.create_ticket({"requester_id": 1002, "subject": f"Bulk {n}", "comment": {
            "body": "x"}}, None)  # fmt: skip
    status, body, _ = await get(sandbox, "/api/v2/search", query="type:ticket bulk", page="10")
    assert status == 200 and len(body["results"]) == 100 and body["count"] == 1005
    status, body, _ = await get(sandbox, "/api/v2/search", query="type:ticket bulk", page="11")
    assert status == 422 and body["error"] == "invalid"
    cursor = {"query": "type:ticket bulk", "page[size]": "10"}
    assert (await get(sandbox, "/api/v2/search", **cursor))[0] == 400


async def test_audits_hold_each_writes_metadata_and_comment(sandbox: Any, store: Any) -> None:
    store.update_ticket(5001, {"comment": {"body": "keyed"}, "metadata": {"k": ["a", "b"]}})
    store.update_ticket(5001, {"metadata": {"lost": True}})  # changes nothing: no audit
    _, body, _ = await get(sandbox, "/api/v2/tickets/5001/audits")
    last = body["audits"][-1]
    assert last["metadata"]["custom"] == {"k": ["a", "b"]}
    assert [e["body"] for e in last["events"] if e["type"] == "Comment"] == ["keyed"]
    assert len(body["audits"]) == 2  # the create's and this one
    from gateway.sandbox.rules import ZendeskError

    with pytest.raises(ZendeskError) as refused:
        store.update_ticket(5001, {"comment": {"body": "x"}, "metadata": {"k": "x" * 1100}})
    assert refused.value.status == 422


async def test_rate_limits_answer_429_with_zendesks_headers(sandbox: Any, store: Any) -> None:
    from aiohttp import ClientSession

    now = [1000.0]
    store.clock = lambda: now[0]

    async def put(path: str, data: dict[str, Any]) -> Any:
        async with ClientSession() as s:
            r = await s.put(sandbox.make_url(path), json=data, headers=AUTH)
            return r.status, await r.text(), r.headers

    for _ in range(5):
        status, _, headers = await put("/api/v2/users/1002", {"user": {"notes": "n"}})
        assert status == 200 and headers["X-Rate-Limit"] == "700"
    status, text, headers = await put("/api/v2/users/1002", {"user": {"notes": "n"}})
    assert status == 429 and headers["Content-Type"].startswith("text/plain")
    assert "single unique user" in text and int(headers["Retry-After"]) == 60
    assert int(headers["X-Rate-Limit-Remaining"]) > 0  # the account has quota left
    assert (await put("/api/v2/users/1001", {"user": {"notes": "n"}}))[0] == 200  # another user
    now[0] += 60
    assert (await put("/api/v2/users/1002", {"user": {"notes": "n"}}))[0] == 200
    for n in range(30):
        assert (await put("/api/v2/tickets/5001", {"ticket": {"priority": "low"}}))[0] == 200, n
    status, text, headers = await put("/api/v2/tickets/5001", {"ticket": {"priority": "low"}})
    assert status == 429 and int(headers["Retry-After"]) == 600
    store.limits.account_per_minute = 3
    statuses = [(await get(sandbox, "/api/v2/users/1001"))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    _, _, headers = await get(sandbox, "/api/v2/users/1001")
    assert headers["X-Rate-Limit-Remaining"] == "0" and int(headers["Retry-After"]) >= 1


async def test_a_record_429_shows_account_quota_even_at_its_last_request(
    sandbox: Any, store: Any
) -> None:
    """The header contract clients rely on: per-record 429 = account quota left (> 0)."""
    from aiohttp import ClientSession

    store.limits.account_per_minute = 6
    async with ClientSession() as s:
        for n in range(6):
            r = await s.put(
                sandbox.make_url("/api/v2/users/1002"), json={"user": {"notes": "n"}}, headers=AUTH
            )
            remaining = r.headers["X-Rate-Limit-Remaining"]
            assert (r.status, int(remaining) > 0) == ((200, True) if n < 5 else (429, True)), n
