"""Error translation and request rendering, with aioresponses standing in for the upstream."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import API, AUTH, ROOT, gateway_env

from gateway.config import load_config
from gateway.mapping.interactions import idempotency_key

UP = "https://acme.zendesk.example"
USER_FIELDS = re.compile(rf"^{UP}/api/v2/user_fields.*$")


@pytest.fixture
async def offline(make_client: Any) -> Any:
    config = load_config(ROOT / "config.example.yaml", env=gateway_env(UP))
    return await make_client(config)


@pytest.fixture
def upstream(request: pytest.FixtureRequest) -> Any:
    fields = getattr(request, "param", [])
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        mock.get(USER_FIELDS, payload={"user_fields": fields}, repeat=True)
        yield mock


async def test_upstream_refusing_our_credentials_is_502(offline: Any, upstream: Any) -> None:
    upstream.get(
        re.compile(r".*/users/1001.*"), status=401, payload={"error": "Couldn't authenticate you"}
    )
    resp = await offline.get(f"{API}/customer/1001", headers=AUTH)
    assert resp.status == 502
    body = await resp.json()
    assert "credentials" in body["message"] and "tracking id" in body["message"]


@pytest.mark.parametrize(
    ("status", "payload", "body"),
    [
        (500, {"error": "ServerError"}, None),
        (503, None, "<html>down</html>"),
        (200, None, "not json"),
    ],
)
async def test_upstream_trouble_is_502(
    offline: Any, upstream: Any, status: int, payload: Any, body: str | None
) -> None:
    upstream.get(re.compile(r".*/users/1001.*"), status=status, payload=payload, body=body or "")
    resp = await offline.get(f"{API}/customer/1001", headers=AUTH)
    assert resp.status == 502
    assert (await resp.json())["error"] == "BadGateway"


async def test_upstream_refused_connection_is_502(offline: Any, upstream: Any) -> None:
    import aiohttp

    upstream.get(re.compile(r".*/users/1001.*"), exception=aiohttp.ClientConnectionError("reset"))
    assert (await offline.get(f"{API}/customer/1001", headers=AUTH)).status == 502


async def test_rate_limited_is_503_with_retry_after(offline: Any, upstream: Any) -> None:
    upstream.get(
        re.compile(r".*/users/1001.*"),
        status=429,
        body="You have exceeded the rate limit",
        headers={"Retry-After": "60", "Content-Type": "text/plain"},
    )
    resp = await offline.get(f"{API}/customer/1001", headers=AUTH)
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "60"
    assert (await resp.json())["error"] == "ServiceUnavailable"


TIER = [{"key": "tier", "title": "Tier", "type": "text", "active": True}]


@pytest.mark.parametrize("upstream", [TIER], indirect=True)
async def test_custom_field_errors_map_back_by_field_key(offline: Any, upstream: Any) -> None:
    upstream.post(
        f"{UP}/api/v2/users",
        status=422,
        payload={
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {
                "base": [
                    {
                        "description": "Tier: is invalid",
                        "error": "InvalidValue",
                        "field_key": "tier",
                    },
                    {"description": "Account is locked", "error": "Locked"},
                ],
                "name": [{"description": "Name: cannot be blank", "error": "BlankValue"}],
            },
        },
    )
    resp = await offline.post(f"{API}/customer", json={"name": " ", "tier": "x"}, headers=AUTH)
    assert resp.status == 422
    body = await resp.json()
    assert body["fields"] == [
        {"name": "tier", "errorMessage": "Tier: is invalid"},
        {"name": "name", "errorMessage": "Name: cannot be blank"},
    ]
    assert "Account is locked" in body["message"]


async def test_oauth_token_wins_over_api_token(make_client: Any, upstream: Any) -> None:
    env = gateway_env(UP, ZENDESK_OAUTH_TOKEN="oauth-abc")
    client = await make_client(load_config(ROOT / "config.example.yaml", env=env))
    upstream.get(re.compile(r".*/users/1001.*"), payload={"user": {"id": 1001, "name": "A"}})
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200
    calls = next(v for k, v in upstream.requests.items() if "users/1001" in str(k[1]))
    assert calls[0].kwargs["headers"]["Authorization"] == "Bearer oauth-abc"


def test_idempotency_key_depends_on_identity_not_text() -> None:
    one = {
        "customerId": "1",
        "title": "T",
        "interactions": [{"service": "x", "serviceId": "1", "body": "a"}],
    }
    same = {**one, "interactions": [{"service": "x", "serviceId": "1", "body": "edited"}]}
    other = {**one, "title": "U"}
    assert idempotency_key(one) == idempotency_key(same) != idempotency_key(other)
