"""The sandbox stays honest: its answers validate against Zendesk's official OpenAPI, and its
search and errors behave as docs/behaviour.md §3 describes."""

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
        await call("GET", f"/api/v2/users/{uid}/tickets/requested", "ListTickets", 200)


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
