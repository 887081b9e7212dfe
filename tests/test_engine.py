"""The engine: error translation and request rendering (aioresponses standing in for the
upstream), the CRM's broken text repaired, and answers checked before they are cached."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import pytest
from aioresponses import aioresponses
from conftest import API, AUTH, EF_AUTH, ROOT, events, gateway_env

from gateway.cache import CacheSettings
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


# -- the CRM's text that is not text: repaired, never a 500 ----------------------------------------

BROKEN = "Ja\ud800ne\x00 Doe"  # a lone surrogate and a NUL, as another client could store them
FIXED = "Ja\ufffdne\ufffd Doe"


async def test_a_record_holding_a_lone_surrogate_or_nul_reads(client: Any, store: Any) -> None:
    jane = store.users[1001]
    jane["name"] = BROKEN
    jane["user_fields"]["loyalty_number"] = "L-\udfff"
    store.tickets[5001]["subject"] = "Order \ud83d damaged"
    vip = next(f for f in store.user_fields if f["key"] == "vip_level")
    vip["custom_field_options"][0]["name"] = "Go\udc80ld"
    found = await client.get(f"{API}/customer/1001", headers=AUTH)
    assert found.status == 200
    body = await found.json()
    assert body["name"] == FIXED and body["loyalty_number"] == "L-\ufffd"
    cases = await client.get(f"{API}/customer/1001/cases", headers=AUTH)
    assert cases.status == 200
    assert "Order \ufffd damaged" in [c["title"] for c in await cases.json()]
    searched = await client.post(
        f"{API}/customers", json={"email": "jane@example.com"}, headers=AUTH
    )
    assert searched.status == 200 and (await searched.json())[0]["name"] == FIXED
    best = await client.post(
        f"{API}/customer/bestmatch", json={"email": "jane@example.com"}, headers=AUTH
    )
    assert best.status == 200 and (await best.json())[0]["name"] == FIXED
    meta = await client.get(f"{API}/meta/object/customer", headers=AUTH)
    assert meta.status == 200
    by_phone = await client.get("/customer?query=phone:%2B41791234567", headers=EF_AUTH)
    assert by_phone.status == 200 and (await by_phone.json())["first_name"] == "Ja\ufffdne\ufffd"
    labels = await client.get("/label", headers=EF_AUTH)
    assert labels.status == 200 and (await labels.json())[0]["name"] == "Go\ufffdld"


async def test_an_upstream_error_with_broken_text_is_still_its_status(
    offline: Any, upstream: Any
) -> None:
    upstream.post(
        f"{UP}/api/v2/users",
        status=422,
        body='{"error": "RecordInvalid", "description": "bad \\ud800",'
        ' "details": {"name": [{"description": "Name: \\udc00 is \\u0000 invalid"}]}}',
        headers={"Content-Type": "application/json"},
    )
    resp = await offline.post(f"{API}/customer", json={"name": "Ada"}, headers=AUTH)
    assert resp.status == 422
    assert (await resp.json())["fields"] == [
        {"name": "name", "errorMessage": "Name: \ufffd is \ufffd invalid"}
    ]


# -- field definitions and labels: checked before they are cached ----------------------------------

GOOD_FIELDS = {"user_fields": [{"key": "tier", "title": "Tier", "type": "text", "active": True}]}
MALFORMED = [
    {},
    {"user_fields": None},
    {"user_fields": {"key": "tier"}},
    {"user_fields": [{"title": "No key", "type": "text", "active": True}]},
    {"user_fields": [{"key": "tier", "title": "No type", "active": True}]},
]


@pytest.mark.parametrize("answer", [*MALFORMED, None])
async def test_a_malformed_field_definition_answer_is_an_error_and_not_cached(
    offline: Any, answer: Any
) -> None:
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        if answer is None:
            mock.get(USER_FIELDS, status=200, body="")  # an empty 2xx
        else:
            mock.get(USER_FIELDS, payload=answer)
        mock.get(USER_FIELDS, payload=GOOD_FIELDS)
        refused = await offline.get(f"{API}/meta/object/customer", headers=AUTH)
        assert refused.status == 502
        assert (await refused.json())["error"] == "BadGateway"
        meta = await offline.get(f"{API}/meta/object/customer", headers=AUTH)
        assert meta.status == 200
        assert "tier" in [f["name"] for f in (await meta.json())["fields"]]


async def test_no_custom_fields_at_all_is_a_valid_answer(offline: Any) -> None:
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        mock.get(USER_FIELDS, payload={"user_fields": []})
        meta = await offline.get(f"{API}/meta/object/customer", headers=AUTH)
        assert meta.status == 200
        assert (await offline.get(f"{API}/meta/object/customer", headers=AUTH)).status == 200
        assert len([k for k in mock.requests if "user_fields" in str(k[1])]) == 1  # cached


async def test_a_malformed_answer_after_a_good_one_serves_the_last_good_value(
    make_client: Any, capsys: Any
) -> None:
    config = load_config(ROOT / "config.example.yaml", env=gateway_env(UP))
    short = CacheSettings(ttl_seconds=0.05, max_entries=16, stale_seconds=60)
    client = await make_client(
        dataclasses.replace(
            config, cache={**config.cache, "field_definitions": short, "meta": short}
        )
    )
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        mock.get(USER_FIELDS, payload=GOOD_FIELDS)
        mock.get(USER_FIELDS, payload={}, repeat=True)
        for _ in range(2):  # the second after both caches expired: {} comes, the stale serves
            meta = await client.get(f"{API}/meta/object/customer", headers=AUTH)
            assert meta.status == 200
            assert "tier" in [f["name"] for f in (await meta.json())["fields"]]
            await asyncio.sleep(0.1)
    stale = [e for e in events(capsys.readouterr().out) if e["event"] == "cache_stale"]
    assert [e["cache"] for e in stale] == ["field_definitions"]
    assert "no list of field definitions" in stale[0]["detail"]


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"user_fields": []},  # no vip_level field: `items` finds nothing
        {"user_fields": [{"key": "vip_level", "custom_field_options": {"value": "gold"}}]},
        {"user_fields": [{"key": "vip_level", "custom_field_options": [{"name": "Gold"}]}]},
    ],
)
async def test_a_malformed_label_answer_is_an_error_and_not_cached(
    offline: Any, answer: Any
) -> None:
    good = {"user_fields": [{"key": "vip_level", "custom_field_options": [
        {"name": "Gold", "value": "gold"}]}]}  # fmt: skip
    with aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        mock.get(USER_FIELDS, payload=answer)
        mock.get(USER_FIELDS, payload=good)
        refused = await offline.get("/label", headers=EF_AUTH)
        assert refused.status == 502 and (await refused.json())["error"] == "BadGateway"
        labels = await offline.get("/label", headers=EF_AUTH)
        assert labels.status == 200 and [x["name"] for x in await labels.json()] == ["Gold"]
