"""End-to-end scenarios, run against every upstream: the Zendesk sandbox always, and a real
Request Tracker 5 when RT5_URL is set (`make test-rt5` starts one). Each scenario makes its own
data through the gateway, and counts comments in the upstream itself."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from conftest import API, AUTH, EF_AUTH, ROOT, gateway_env, interaction

from gateway.config import Config, load_config
from gateway.sandbox.store import Store


@dataclass
class Upstream:
    name: str
    client: Any
    label_change: dict[str, str]  # the customer change that gives the label "Gold"
    comments: Callable[[str], Awaitable[list[str]]]  # the texts on a case, read upstream


@pytest.fixture(params=["zendesk", "rt5"])
async def upstream(
    request: pytest.FixtureRequest, make_client: Any, store: Store, config: Config
) -> Upstream:
    if request.param == "zendesk":

        async def sandbox_comments(case_id: str) -> list[str]:
            return [c["body"] for c in store.comments[int(case_id)]]

        client = await make_client(config)
        return Upstream("zendesk", client, {"vip_level": "gold"}, sandbox_comments)
    url = os.environ.get("RT5_URL")
    if not url:
        pytest.skip("no Request Tracker 5: `make test-rt5` starts one and sets RT5_URL")
    env = {
        **gateway_env(url),
        "RT5_URL": url,
        "RT5_USER": os.environ["RT5_USER"],
        "RT5_PASSWORD": os.environ["RT5_PASSWORD"],
    }
    config = load_config(ROOT / "config.rt5.example.yaml", env=env)
    auth = aiohttp.BasicAuth(env["RT5_USER"], env["RT5_PASSWORD"])

    async def rt_comments(case_id: str) -> list[str]:
        async with (
            aiohttp.ClientSession(auth=auth) as s,
            s.get(
                f"{url}/REST/2.0/ticket/{case_id}/attachments",
                params={"fields": "Content", "per_page": "100"},
            ) as r,
        ):
            return [i["Content"] for i in (await r.json())["items"] if i.get("Content")]

    client = await make_client(config)
    return Upstream("rt5", client, {"label": "Gold"}, rt_comments)


def someone() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    phone = "+4179" + "".join(random.choices("0123456789", k=7))
    return {"name": f"Scenario {tag}", "email": f"scenario-{tag}@example.com", "phone": phone,
            "externalId": f"EXT-{tag}"}  # fmt: skip


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return None if status == 204 else await resp.json()


async def test_a_customer_from_creation_to_best_match(upstream: Upstream) -> None:
    c, person = upstream.client, someone()
    made = await ok(await c.post(f"{API}/customer", json=person, headers=AUTH), 201)
    assert {k: made[k] for k in person} == person and made["url"] == made["uri"]
    found = await ok(await c.get(f"{API}/customer/{made['id']}", headers=AUTH))
    assert found == made
    by_email = await ok(
        await c.post(f"{API}/customers", json={"email": person["email"]}, headers=AUTH)
    )
    assert [x["id"] for x in by_email] == [made["id"]]
    by_both = {"externalId": person["externalId"], "name": person["name"].split()[1]}
    assert [
        x["id"] for x in await ok(await c.post(f"{API}/customers", json=by_both, headers=AUTH))
    ] == [made["id"]]
    none = await c.post(f"{API}/customers", json={"email": f"x{person['email']}"}, headers=AUTH)
    await ok(none, 204)
    local = person["phone"].replace("+", "00")
    best = await ok(
        await c.post(f"{API}/customer/bestmatch", json={"phoneNumbers": [local]}, headers=AUTH)
    )
    assert [x["id"] for x in best] == [made["id"]]
    updated = await ok(
        await c.patch(
            f"{API}/customer/{made['id']}", json={"notes": "Prefers chat."}, headers=AUTH
        ),
        201,
    )
    assert updated["notes"] == "Prefers chat." and updated["email"] == person["email"]


async def test_a_case_from_creation_to_closing(upstream: Upstream) -> None:
    c = upstream.client
    customer = await ok(await c.post(f"{API}/customer", json=someone(), headers=AUTH), 201)
    body = {"customerId": customer["id"], "title": "Screen cracked",
            "interactions": [interaction("s1"), interaction("s2", "Still broken")]}  # fmt: skip
    case = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    assert case["title"] == "Screen cracked" and case["status"] == "open"
    assert case["customerId"] == customer["id"] and case["url"] == case["linkUrl"]
    assert await ok(await c.get(f"{API}/case/{case['id']}", headers=AUTH)) == case
    cases = await ok(await c.get(f"{API}/customer/{customer['id']}/cases", headers=AUTH))
    assert [x["id"] for x in cases] == [case["id"]]
    again = {"interactions": [interaction("s2"), interaction("s3", "Replacement sent")]}
    for _ in range(2):
        await ok(await c.patch(f"{API}/case/{case['id']}", json=again, headers=AUTH))
    texts = "\n".join(await upstream.comments(case["id"]))
    for marker in ("s1", "s2", "s3"):
        assert texts.count(f"[khoros:twitter:{marker}]") == 1, (upstream.name, marker)
    closed = await ok(
        await c.patch(f"{API}/case/{case['id']}", json={"status": "closed"}, headers=AUTH)
    )
    assert closed["status"] == "closed"


async def test_not_found_and_validation(upstream: Upstream) -> None:
    c = upstream.client
    assert (await c.get(f"{API}/customer/987654", headers=AUTH)).status == 404
    assert (await c.get(f"{API}/customer/987654/cases", headers=AUTH)).status == 404
    assert (await c.get(f"{API}/case/987654", headers=AUTH)).status == 404
    missing = {"customerId": "987654", "title": "Nobody"}
    assert (await c.post(f"{API}/case", json=missing, headers=AUTH)).status == 404
    bad = {**someone(), "email": "not-an-email"}
    resp = await c.post(f"{API}/customer", json=bad, headers=AUTH)
    assert resp.status == 422, await resp.text()
    assert [f["name"] for f in (await resp.json())["fields"]] == ["email"]
    customer = await ok(await c.post(f"{API}/customer", json=someone(), headers=AUTH), 201)
    resp = await c.patch(f"{API}/customer/{customer['id']}", json={"email": "bad@@x"}, headers=AUTH)
    assert resp.status == 422, await resp.text()
    assert "email" in [f["name"] for f in (await resp.json())["fields"]]


async def test_priority_routing_by_phone(upstream: Upstream) -> None:
    c, person = upstream.client, someone()
    customer = await ok(await c.post(f"{API}/customer", json=person, headers=AUTH), 201)
    await ok(
        await c.patch(f"{API}/customer/{customer['id']}", json=upstream.label_change, headers=AUTH),
        201,
    )
    labels = await ok(await c.get("/label", headers=EF_AUTH))
    gold = next(lab for lab in labels if lab["name"] == "Gold")
    query = "phone:" + person["phone"].replace("+", "00")
    found = await ok(await c.get("/customer", params={"query": query}, headers=EF_AUTH))
    assert found["_id"] == customer["id"] and found["phone1"] == person["phone"]
    assert found["first_name"] == "Scenario" and found["labels"] == [gold["_id"]]
    unknown = await c.get("/customer", params={"query": "phone:+1 999 555 0000"}, headers=EF_AUTH)
    assert unknown.status == 404


HOSTILE = [
    '"',
    '" OR "',
    "*",
    "**",
    "type:user",
    "type:ticket status:open",
    "-jane",
    ":",
    "\\",
    "%",
    "_",
    "jane\nname:*",
    "jane\r\nX-Injected: 1",
    "' OR 1=1 --",
    "%' OR '1'='1",
    "') OR ('1'='1",
    "CF.{Phone} LIKE '%'",
    '{"field":"Name","value":"root"}',
    "j\u0430ne@example.com",  # a Cyrillic a
    "\uff4a\uff41\uff4e\uff45",  # fullwidth "jane"
    "\u202ejane",  # right-to-left override
    "\x00",
    "name:*",
    "email:*@*",
    "   ",
    "0" * 300,
]


async def test_hostile_values_never_widen_a_search(upstream: Upstream) -> None:
    c, person = upstream.client, someone()
    await ok(await c.post(f"{API}/customer", json=person, headers=AUTH), 201)
    meta = await ok(await c.get(f"{API}/meta/object/customer", headers=AUTH))
    searchable = [f["name"] for f in meta["fields"] if f["searchable"]]
    for value in HOSTILE:
        for field in searchable:
            resp = await c.post(f"{API}/customers", json={field: value}, headers=AUTH)
            assert resp.status in (204, 400), (upstream.name, field, repr(value), resp.status)
        body = {"displayName": value, "screenName": value, "email": value, "phoneNumbers": [value]}
        resp = await c.post(f"{API}/customer/bestmatch", json=body, headers=AUTH)
        assert resp.status == 200 and await resp.json() == [], (upstream.name, repr(value))
        resp = await c.get("/customer", params={"query": f"phone:{value}"}, headers=EF_AUTH)
        assert resp.status in (400, 404), (upstream.name, repr(value), resp.status)
    # A value that is a prefix, a wildcard or a fragment of a real one still finds nothing.
    for partial in (
        person["email"][:8],
        person["email"].replace("scenario", "*"),
        person["phone"][:6],
    ):
        resp = await c.post(f"{API}/customers", json={"email": partial}, headers=AUTH)
        assert resp.status == 204, (upstream.name, partial)
