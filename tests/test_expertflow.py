"""Expertflow priority routing (docs/behaviour.md §2) against the sandbox, through HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import EF_AUTH, ROOT, SPECS, events, free_port, gateway, gateway_env, tuned, wait_for

from gateway.cache import CacheSettings
from gateway.config import Config, load_config
from gateway.mapping.priority_routing import label_id
from gateway.sandbox.server import CALLS, Faults
from gateway.sandbox.store import Store

CUSTOMER_KEYS = [
    "_id", "first_name", "last_name", "email", "phone1", "phone2", "phone3", "phone4", "phone5",
    "labels", "created_by", "updated_by", "createdAt", "updatedAt", "__v",
]  # fmt: skip
LABEL_KEYS = [
    "_id",
    "name",
    "color_code",
    "created_by",
    "updated_by",
    "createdAt",
    "updatedAt",
    "__v",
]


def with_env(config: Config, **env: str) -> Config:
    return load_config(
        ROOT / "config.example.yaml", env=gateway_env(config.upstream.base_url, **env)
    )


def upstream_calls(sandbox: Any, fragment: str) -> int:
    return sum(fragment in c for c in sandbox.app[CALLS])


def test_documented_keys_are_the_seeds() -> None:
    seed = (SPECS / "expertflow-priority-routing.txt").read_text()
    for key in CUSTOMER_KEYS + LABEL_KEYS:
        assert f'"{key}"' in seed or key == "labels", key


async def test_labels_exactly_as_documented(client: Any) -> None:
    resp = await client.get("/label", headers=EF_AUTH)
    assert resp.status == 200
    labels = await resp.json()
    assert [lab["name"] for lab in labels] == ["Gold", "Silver", "Platinum"]
    for lab in labels:
        assert list(lab) == LABEL_KEYS
        assert len(lab["_id"]) == 24 and int(lab["_id"], 16) >= 0
        assert lab["__v"] == 0 and lab["color_code"].startswith("#")
    assert labels[0]["color_code"] == "#3cb44b"
    assert labels[0]["_id"] == label_id("zendesk", "gold")


async def test_customer_exactly_as_documented(client: Any) -> None:
    resp = await client.get("/customer", params={"query": "phone:+41791234567"}, headers=EF_AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert list(body) == CUSTOMER_KEYS
    labels = {
        lab["name"]: lab["_id"]
        for lab in await (await client.get("/label", headers=EF_AUTH)).json()
    }
    assert body == {
        **body,
        "_id": "1001",
        "first_name": "Jane",
        "last_name": "Doe",
        "email": "jane@example.com",
        "phone1": "+41791234567",
        "phone2": "",
        "labels": [labels["Gold"]],
        "__v": 0,
    }
    assert body["createdAt"].endswith("Z") and "." in body["createdAt"]
    assert all(isinstance(body[k], str) for k in CUSTOMER_KEYS if k not in ("labels", "__v"))


@pytest.mark.parametrize(
    "raw_query",
    [
        "query=phone:%2B41791234567",
        "query=phone:+41791234567",  # a + that arrived as a space
        "query=phone:0041791234567",
        "query=phone:41791234567",
        "query=phone:%2B41%2079%20123%2045%2067",
        "query=phone:%2B41-79-123-45-67",
    ],
)
async def test_phone_normalisations(client: Any, raw_query: str) -> None:
    resp = await client.get(f"/customer?{raw_query}", headers=EF_AUTH)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["_id"] == "1001" and body["phone1"] == "+41791234567"


@pytest.mark.parametrize(
    "number", ["0791234567", "+41 79 123 45 67", "0041791234567", "079 123 45 67", "41791234567"]
)
async def test_a_default_region_finds_national_numbers(
    make_client: Any, config: Config, sandbox: Any, number: str
) -> None:
    client = await make_client(with_env(config, GATEWAY_DEFAULT_REGION="ch"))
    resp = await client.get("/customer", headers=EF_AUTH, params={"query": f"phone:{number}"})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["_id"] == "1001" and body["phone1"] == "+41791234567"
    assert upstream_calls(sandbox, "/users/search") == 1


async def test_without_a_default_region_a_national_number_is_a_clean_404(
    client: Any, make_client: Any, config: Config, sandbox: Any
) -> None:
    for number in ("0791234567", "079 123 45 67", "1111"):
        resp = await client.get("/customer", headers=EF_AUTH, params={"query": f"phone:{number}"})
        assert resp.status == 404, number
        body = await resp.json()
        assert body["error"] == "NotFound" and "tracking id" in body["message"]
    # A number that is none is not searched for: nothing could match it.
    assert upstream_calls(sandbox, "/users/search") == 0
    empty = await make_client(tuned(config, expertflow={"not_found": "empty"}))
    body = await (
        await empty.get("/customer", headers=EF_AUTH, params={"query": "phone:0791234567"})
    ).json()
    assert body["_id"] == "" and body["labels"] == [] and body["phone1"] == "0791234567"


async def test_racing_lookups_of_one_number_however_written_share_one_search(
    make_client: Any, config: Config, sandbox: Any, faults: Faults
) -> None:
    cached = CacheSettings(ttl_seconds=60, max_entries=100, stale_seconds=0)
    swiss = dataclasses.replace(
        with_env(config, GATEWAY_DEFAULT_REGION="CH"),
        cache={**config.cache, "customer_by_phone": cached},
    )
    client = await make_client(swiss)
    faults.delay = 0.2  # the first search is still running when the others arrive
    forms = ["0791234567", "+41 79 123 45 67", "0041791234567", "079-123-45-67"]
    answers = await asyncio.gather(
        *(
            client.get("/customer", headers=EF_AUTH, params={"query": f"phone:{forms[i % 4]}"})
            for i in range(40)
        )
    )
    bodies = [await a.json() for a in answers]
    assert {b["_id"] for b in bodies} == {"1001"} and {a.status for a in answers} == {200}
    assert upstream_calls(sandbox, "/users/search") == 1


async def test_an_extension_does_not_change_the_match(client: Any) -> None:
    resp = await client.get(
        "/customer", headers=EF_AUTH, params={"query": "phone:+41 79 123 45 67 ext. 12"}
    )
    assert resp.status == 200
    assert (await resp.json())["_id"] == "1001"


async def test_other_numbers_follow_the_matched_one_each_once(client: Any, store: Store) -> None:
    for number in ("+41 79 123 45 67", "0041 44 668 18 00", "+41446681800"):
        store.add_identity(1001, "phone_number", number)
    body = await (
        await client.get("/customer", headers=EF_AUTH, params={"query": "phone:0041791234567"})
    ).json()
    assert body["_id"] == "1001"
    assert [body[f"phone{i}"] for i in range(1, 4)] == ["+41791234567", "0041 44 668 18 00", ""]


async def test_not_a_phone_query_is_400(client: Any) -> None:
    for query in ("email:jane@example.com", "phone:", "phone:ab", "41791234567"):
        resp = await client.get("/customer", params={"query": query}, headers=EF_AUTH)
        assert resp.status == 400, query
        assert (await resp.json())["error"] == "BadRequest"
    assert (await client.get("/customer", headers=EF_AUTH)).status == 400


async def test_not_found_both_ways(client: Any, make_client: Any, config: Config) -> None:
    resp = await client.get("/customer", params={"query": "phone:+1 999 000 0000"}, headers=EF_AUTH)
    assert resp.status == 404
    assert "tracking id" in (await resp.json())["message"]
    empty = await make_client(tuned(config, expertflow={"not_found": "empty"}))
    resp = await empty.get("/customer", params={"query": "phone:+19990000000"}, headers=EF_AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert list(body) == CUSTOMER_KEYS
    assert body["labels"] == [] and body["phone1"] == "+19990000000" and body["_id"] == ""


async def test_several_users_one_number_most_recently_updated(
    client: Any, store: Store, capsys: Any
) -> None:
    other = store.create_user({"name": "Jane Twin", "phone": "+41 79 123 45 67"})
    other["updated_at"] = "2099-01-01T00:00:00Z"
    body = await (
        await client.get("/customer", params={"query": "phone:0041791234567"}, headers=EF_AUTH)
    ).json()
    assert body["_id"] == str(other["id"]) and body["first_name"] == "Jane"
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert any(x["event"] == "phone_ambiguous" and x["matches"] == 2 for x in lines)


async def test_label_ids_are_stable_across_instances(make_client: Any, config: Config) -> None:
    first, second = await make_client(config), await make_client(config)
    one = await (await first.get("/label", headers=EF_AUTH)).json()
    two = await (await second.get("/label", headers=EF_AUTH)).json()
    assert one == two
    customer = await (
        await second.get("/customer?query=phone:%2B15551234567", headers=EF_AUTH)
    ).json()
    assert customer["labels"] == [one[1]["_id"]]  # John is silver


async def test_100_concurrent_label_requests_make_one_upstream_call(
    client: Any, sandbox: Any, faults: Faults
) -> None:
    faults.delay = 0.05  # a slow upstream, so all 100 misses overlap
    responses = await asyncio.gather(*(client.get("/label", headers=EF_AUTH) for _ in range(100)))
    assert [r.status for r in responses] == [200] * 100
    assert upstream_calls(sandbox, "/api/v2/user_fields") == 1


async def test_stale_if_error(
    make_client: Any, config: Config, faults: Faults, capsys: Any
) -> None:
    short = CacheSettings(ttl_seconds=0.1, max_entries=4, stale_seconds=0.5)
    client = await make_client(dataclasses.replace(config, cache={**config.cache, "labels": short}))
    good = await (await client.get("/label", headers=EF_AUTH)).json()
    await asyncio.sleep(0.15)  # expired, within the grace
    faults.status = 500
    resp = await client.get("/label", headers=EF_AUTH)  # at once; the refresh fails behind it
    assert resp.status == 200 and await resp.json() == good
    seen: list[dict[str, Any]] = []
    end = asyncio.get_running_loop().time() + 5
    while not any(e["event"] == "cache_stale" for e in seen):
        assert asyncio.get_running_loop().time() < end, "the failed refresh was not logged"
        await asyncio.sleep(0.02)
        seen += events(capsys.readouterr().out)
    await asyncio.sleep(0.5)  # past ttl + grace: the error shows (502, or 503 once the
    resp = await client.get("/label", headers=EF_AUTH)  # circuit breaker has opened)
    assert resp.status in (502, 503)


async def test_purge(make_client: Any, config: Config, sandbox: Any) -> None:
    client = await make_client(with_env(config, GATEWAY_ADMIN_KEY="admin-secret"))
    await client.get("/label", headers=EF_AUTH)
    await client.get("/label", headers=EF_AUTH)
    assert upstream_calls(sandbox, "/api/v2/user_fields") == 1
    assert (await client.post("/admin/cache/purge")).status == 401
    wrong = await client.post("/admin/cache/purge", headers={"Authorization": "test-key-1"})
    assert wrong.status == 401
    admin = {"Authorization": "Bearer admin-secret"}
    resp = await client.post("/admin/cache/purge", json={"caches": ["labels"]}, headers=admin)
    assert resp.status == 200 and await resp.json() == {"purged": ["labels"], "processes": 1}
    await client.get("/label", headers=EF_AUTH)
    assert upstream_calls(sandbox, "/api/v2/user_fields") == 2
    bad = await client.post("/admin/cache/purge", json={"caches": ["nope"]}, headers=admin)
    assert bad.status == 400
    everything = await client.post("/admin/cache/purge", headers=admin)
    assert len((await everything.json())["purged"]) == 4


async def test_purge_is_off_without_an_admin_key(client: Any) -> None:
    assert (await client.post("/admin/cache/purge", headers={"Authorization": "x"})).status == 404


async def test_a_key_is_needed_by_default(make_client: Any, config: Config) -> None:
    """The shipped config, no EXPERTFLOW_API_KEYS, no allow_anonymous: 401, never a lookup."""
    env = gateway_env(config.upstream.base_url)
    del env["EXPERTFLOW_API_KEYS"]
    locked = load_config(ROOT / "config.example.yaml", env=env)
    assert not locked.expertflow.api_keys and not locked.expertflow.allow_anonymous
    client = await make_client(locked)
    for path in ("/label", "/customer?query=phone:%2B41791234567"):
        for headers in ({}, EF_AUTH, {"X-API-Key": ""}):
            resp = await client.get(path, headers=headers)
            assert resp.status == 401, (path, headers)
            assert (await resp.json())["error"] == "Unauthorized"
    opened = load_config(
        ROOT / "config.example.yaml", env={**env, "EXPERTFLOW_ALLOW_ANONYMOUS": "true"}
    )
    anonymous = await make_client(opened)
    assert (await anonymous.get("/customer?query=phone:%2B41791234567")).status == 200
    assert (await anonymous.get("/label")).status == 200


async def test_keys_by_header_or_in_the_url(client: Any) -> None:
    assert (await client.get("/label")).status == 401
    assert (await client.get("/label", headers={"X-API-Key": "ef-key"})).status == 200
    assert (await client.get("/label", params={"api_key": "ef-key"})).status == 200
    assert (await client.get("/label", headers={"X-API-Key": "test-key-1"})).status == 401
    query = {"query": "phone:41791234567", "api_key": "nope"}
    assert (await client.get("/customer", params=query)).status == 401
    keyed = {"query": "phone:41791234567", "api_key": "ef-key"}
    assert (await client.get("/customer", params=keyed)).status == 200


def test_without_keys_the_gateway_starts_warns_and_answers_401(processes: Any) -> None:
    sandbox_port, port = free_port(), free_port()
    processes.append(gateway("sandbox", "--port", str(sandbox_port), quiet=True))
    env: dict[str, str | None] = {**gateway_env(f"http://127.0.0.1:{sandbox_port}")}
    env.update(EXPERTFLOW_API_KEYS=None, EXPERTFLOW_ALLOW_ANONYMOUS=None)
    proc = gateway("serve", "--config", "config.example.yaml", "--port", str(port), env=env)
    processes.append(proc)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}/customer?query=phone:%2B41791234567"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["error"] == "Unauthorized"
    processes.remove(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0
    lines = events((proc.stdout.read() if proc.stdout else b"").decode())
    assert [e["event"] for e in lines[:2]] == ["started", "expertflow_locked"]
    assert lines[1]["level"] == "warning" and "EXPERTFLOW_API_KEYS" in lines[1]["detail"]


async def test_labels_from_declared_user_tags(
    tmp_path: Path, make_client: Any, config: Config
) -> None:
    text = (ROOT / "mappings/zendesk.yaml").read_text()
    start = text.index("    request: {method: GET, path: /api/v2/user_fields}\n    items:")
    end = text.index("    colors:", start)
    declared = (
        "    declared: [{key: vip, name: VIP}, {key: vvip, name: VVIP}]\n    of_customer: tags\n"
    )
    mapping = tmp_path / "tags.yaml"
    mapping.write_text(text[:start] + declared + text[end:])
    client = await make_client(tuned(config, upstream={"mapping": mapping}))
    labels = await (await client.get("/label", headers=EF_AUTH)).json()
    assert [(lab["name"], lab["color_code"]) for lab in labels] == [
        ("VIP", "#7c87ce"),
        ("VVIP", "#7c87ce"),
    ]
    jane = await (await client.get("/customer?query=phone:41791234567", headers=EF_AUTH)).json()
    assert jane["labels"] == [labels[0]["_id"]]  # "newsletter" is a tag but not a label
