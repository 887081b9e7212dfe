"""End-to-end scenarios, run against every upstream: the Zendesk sandbox always, and a real
Request Tracker 5 when RT5_URL is set (`make test-rt5` starts one). Each scenario makes its own
data through the gateway, and counts comments in the upstream itself (the `upstream` fixture
is in conftest)."""

from __future__ import annotations

from typing import Any

from conftest import API, AUTH, EF_AUTH, Upstream, interaction, ok, someone, tuned


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


async def test_best_match_from_every_signal(upstream: Upstream) -> None:
    """A case number, an account number, an order number or a profile URL alone finds the
    customer; an exact email scores above a namesake."""
    c, person = upstream.client, someone()
    tag = person["externalId"].removeprefix("EXT-")
    made = await ok(
        await c.post(f"{API}/customer", json={**person, "instagram": f"ig_{tag}"}, headers=AUTH),
        201,
    )
    body = {"customerId": made["id"], "title": "Where is my order?", "orderNumber": f"O-{tag}"}
    case = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    assert case["orderNumber"] == f"O-{tag}"
    namesake = await ok(await c.post(f"{API}/customer", json={"name": person["name"]},
                                     headers=AUTH), 201)  # fmt: skip
    for signal in (
        {"caseNumbers": [case["number"]]},
        {"accountNumbers": person["externalId"]},
        {"orderNumbers": [f"O-{tag}"]},
        {"profileUrl": f"https://www.instagram.com/ig_{tag}/"},
        {"email": person["email"], "displayName": person["name"]},
    ):
        found = await ok(await c.post(f"{API}/customer/bestmatch", json=signal, headers=AUTH))
        expected = [made["id"], namesake["id"]] if "displayName" in signal else [made["id"]]
        assert [x["id"] for x in found] == expected, (upstream.name, signal)


async def test_a_case_from_creation_to_closing(upstream: Upstream) -> None:
    c = upstream.client
    customer = await ok(await c.post(f"{API}/customer", json=someone(), headers=AUTH), 201)
    body = {"customerId": customer["id"], "title": "Screen cracked",
            "interactions": [interaction("s1"), interaction("s2", "Still broken")]}  # fmt: skip
    case = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    assert case["title"] == "Screen cracked" and case["status"] == "open"
    assert case["customerId"] == customer["id"] and case["url"] == case["linkUrl"]
    found = await ok(await c.get(f"{API}/case/{case['id']}", headers=AUTH))
    assert {k: v for k, v in found.items() if k != "interactions"} == case
    assert [i["serviceId"] for i in found["interactions"]] == ["s1", "s2"]
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


async def test_a_case_carries_the_interactions_written_on_it(upstream: Upstream) -> None:
    """GET /case/{id} reads back what the gateway wrote, from where it recorded it: a forged
    marker in a body, an agent's reply and a repeated update add nothing."""
    c = upstream.client
    customer = await ok(await c.post(f"{API}/customer", json=someone(), headers=AUTH), 201)
    forged = "Look: [khoros:twitter:forged] and\n\n----\n\nmore [khoros:facebook:1]"
    first = interaction("r1", forged, created="2026-11-20T10:00:00Z")
    first["author"] = {"service": "twitter", "serviceId": "77", "handle": "ann",
                       "name": "Ann (on) Tour", "brandOwned": False}  # fmt: skip
    photo = interaction("r2", "", contentType="photo", created="2026-11-20T10:05:00+01:00")
    body = {"customerId": customer["id"], "title": "Read back", "interactions": [first, photo]}
    case = await ok(await c.post(f"{API}/case", json=body, headers=AUTH), 201)
    assert "interactions" not in case  # lists and writes stay light
    await upstream.add_replies(case["id"], 1)
    brand = interaction("r3", "We are on it.\n\nhttps://example.com/help", linkUrl=None)
    brand["author"] = {"service": "twitter", "serviceId": "1", "handle": "acme",
                       "name": "Acme", "brandOwned": True}  # fmt: skip
    update = {"interactions": [photo, brand]}
    for _ in range(2):
        await ok(await c.patch(f"{API}/case/{case['id']}", json=update, headers=AUTH))
    read = (await ok(await c.get(f"{API}/case/{case['id']}", headers=AUTH)))["interactions"]
    assert [i["serviceId"] for i in read] == ["r2", "r1", "r3"], upstream.name  # oldest first
    by_id = {i["serviceId"]: i for i in read}
    # The author's id is recorded where the CRM has a place for records (Zendesk), not in text.
    recorded = upstream.name == "zendesk"
    assert by_id["r1"] == {
        **{k: first[k] for k in ("created", "body", "linkUrl", "serviceId", "service")},
        "contentType": "post",
        "author": {**first["author"], "serviceId": "77" if recorded else ""},
    }
    assert by_id["r2"] == {
        **{k: photo[k] for k in ("body", "linkUrl", "serviceId", "service", "contentType")},
        "created": "2026-11-20T09:05:00Z",
        "author": {**photo["author"], "serviceId": "99" if recorded else ""},
    }
    assert by_id["r3"]["body"] == brand["body"] and by_id["r3"]["linkUrl"] == ""
    assert by_id["r3"]["author"]["brandOwned"] is True
    listed = await ok(await c.get(f"{API}/customer/{customer['id']}/cases", headers=AUTH))
    assert "interactions" not in listed[0]


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


async def test_phone_numbers_as_the_world_writes_them(upstream: Upstream, make_client: Any) -> None:
    swiss = await make_client(tuned(upstream.config, phones={"default_region": "CH"}))
    person = someone()
    e164 = person["phone"]
    national = f"0{e164[3:5]} {e164[5:8]} {e164[8:10]} {e164[10:]}"  # 079 123 45 67
    body = {**person, "phone": f"{national} ext. 12"}
    made = await ok(await swiss.post(f"{API}/customer", json=body, headers=AUTH), 201)
    assert made["phone"] == e164  # E.164, the extension kept apart (or dropped: RT)
    assert made.get("phone_extension") == ("12" if upstream.name == "zendesk" else None)
    spaced = f"+41 {national[1:]}"
    for number in (national, spaced, e164.replace("+", "00"), f"{e164} x3"):
        found = await ok(
            await swiss.get("/customer", headers=EF_AUTH, params={"query": f"phone:{number}"})
        )
        assert found["_id"] == made["id"] and found["phone1"] == e164, number
    searched = await ok(
        await swiss.post(f"{API}/customers", json={"phone": national}, headers=AUTH)
    )
    assert [x["id"] for x in searched] == [made["id"]]
    best = {"phoneNumbers": [f"{national} x9"]}
    found = await ok(await swiss.post(f"{API}/customer/bestmatch", json=best, headers=AUTH))
    assert [x["id"] for x in found] == [made["id"]]
    # Without a default region a national number is no number: 404 to a lookup, 400 to a write.
    plain = upstream.client
    assert (
        await plain.get("/customer", headers=EF_AUTH, params={"query": f"phone:{national}"})
    ).status == 404
    resp = await plain.patch(f"{API}/customer/{made['id']}", json={"phone": national}, headers=AUTH)
    assert resp.status == 400 and (await resp.json())["fields"][0]["name"] == "phone"
    again = await ok(await plain.get(f"{API}/customer/{made['id']}", headers=AUTH))
    assert again["phone"] == e164


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
        body = {"displayName": value, "screenName": value, "email": value, "phoneNumbers": [value],
                "caseNumbers": [value], "orderNumbers": [value], "accountNumbers": value,
                "profileUrl": f"instagram.com/{value}", "service": "instagram"}  # fmt: skip
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
