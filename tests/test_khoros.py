"""Every row of docs/behaviour.md §1, driven through the real HTTP stack against the sandbox CRM."""

from __future__ import annotations

import json
from typing import Any

from conftest import API, AUTH, EF_AUTH, SECOND_KEY, SPECS, interaction, tuned

from gateway.config import Config
from gateway.sandbox.server import CALLS
from gateway.sandbox.store import Store


def _no_fields_problem(body: dict[str, Any]) -> None:
    assert set(body) >= {"error", "message"}
    assert "tracking id:" in body["message"]


# -- meta --------------------------------------------------------------------------------------


async def test_meta_customer_lists_core_mapped_and_discovered_fields(client: Any) -> None:
    resp = await client.get(f"{API}/meta/object/customer", headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert body["name"] == "customer"
    by_name = {f["name"]: f for f in body["fields"]}
    assert list(by_name)[:2] == ["id", "uri"]
    assert by_name["email"] == {
        "name": "email",
        "label": "Email",
        "type": "text",
        "searchable": True,
    }
    assert by_name["notes"]["type"] == "textarea"
    assert by_name["vip_level"]["type"] == "single_sel_list"
    assert by_name["vip_level"]["listValues"][0] == {"name": "Gold", "value": "gold"}
    assert by_name["newsletter"]["type"] == "checkbox"
    assert by_name["birthday"]["type"] == "text"
    assert "old_segment" not in by_name  # inactive upstream field
    for f in body["fields"]:
        assert f["type"] in ("text", "textarea", "single_sel_list", "checkbox")
        assert ("listValues" in f) == (f["type"] == "single_sel_list")


async def test_meta_case_fields_are_not_searchable(client: Any) -> None:
    body = await (await client.get(f"{API}/meta/object/case", headers=AUTH)).json()
    names = [f["name"] for f in body["fields"]]
    assert names[:2] == ["id", "linkUrl"]
    assert {"created", "title", "status", "orderNumber", "custom_360002"} <= set(names)
    assert "custom_1" not in names  # system ticket fields are not custom fields
    assert not any(f["searchable"] for f in body["fields"])
    product = next(f for f in body["fields"] if f["name"] == "custom_360002")
    assert product["listValues"][1] == {"name": "Tablet", "value": "product_tablet"}


async def test_meta_unknown_type_is_404(client: Any) -> None:
    resp = await client.get(f"{API}/meta/object/order", headers=AUTH)
    assert resp.status == 404
    _no_fields_problem(await resp.json())


async def test_meta_is_cached(client: Any, sandbox: Any) -> None:
    for _ in range(3):
        assert (await client.get(f"{API}/meta/object/customer", headers=AUTH)).status == 200
    calls = [c for c in sandbox.app[CALLS] if "user_fields" in c]
    assert len(calls) == 1


# -- auth --------------------------------------------------------------------------------------


async def test_auth_missing_wrong_and_bearer(client: Any) -> None:
    url = f"{API}/customer/1001"
    assert (await client.get(url)).status == 401
    wrong = await client.get(url, headers={"Authorization": "nope"})
    assert wrong.status == 401
    body = await wrong.json()
    assert body["error"] == "Unauthorized" and "nope" not in body["message"]
    assert (await client.get(url, headers={"Authorization": "Bearer test-key-1"})).status == 200
    assert (await client.get(url, headers={"Authorization": SECOND_KEY})).status == 200
    assert (await client.get(url, headers={"Authorization": "Bearer"})).status == 401


# -- customers ---------------------------------------------------------------------------------


async def test_find_customer(client: Any, store: Store) -> None:
    resp = await client.get(f"{API}/customer/1001", headers=AUTH)
    assert resp.status == 200
    body = await resp.json()
    assert body["id"] == "1001"
    assert body["url"] == body["uri"] == f"{store.base_url}/agent/users/1001"
    assert body["name"] == "Jane Doe"
    assert body["twitter"] == "janedoe"
    assert body["organization"] == "Acme AG"
    assert body["vip_level"] == "gold"
    assert body["newsletter"] is True
    assert "facebook" not in body  # only populated fields appear


async def test_find_customer_unknown_and_hostile_ids_are_404(client: Any) -> None:
    for cid in ("999999", "abc", "..%2F..%2Ftickets%2F5001", "1001%3Finclude%3Dx"):
        resp = await client.get(f"{API}/customer/{cid}", headers=AUTH)
        assert resp.status == 404, cid
        _no_fields_problem(await resp.json())


async def test_search_and_recheck(client: Any) -> None:
    resp = await client.post(f"{API}/customers", json={"email": "jane@example.com"}, headers=AUTH)
    assert resp.status == 200
    found = await resp.json()
    # The sandbox, like Zendesk, also returns jane.roe@ for "jane@..."; the re-check drops it.
    assert [c["id"] for c in found] == ["1001"]


async def test_search_ands_fields_and_matches_phone_by_digits(client: Any) -> None:
    both = {"name": "Jane", "phone": "0041 79 123 45 67"}
    found = await (await client.post(f"{API}/customers", json=both, headers=AUTH)).json()
    assert [c["id"] for c in found] == ["1001"]
    by_name = await (
        await client.post(f"{API}/customers", json={"name": "jane"}, headers=AUTH)
    ).json()
    assert {c["id"] for c in by_name} == {"1001", "1003"}


async def test_search_by_custom_field(client: Any) -> None:
    found = await (
        await client.post(f"{API}/customers", json={"vip_level": "silver"}, headers=AUTH)
    ).json()
    assert [c["name"] for c in found] == ["John Smith"]


async def test_search_nothing_found_is_204_without_body(client: Any) -> None:
    resp = await client.post(f"{API}/customers", json={"email": "nobody@example.com"}, headers=AUTH)
    assert resp.status == 204
    assert await resp.read() == b""


async def test_search_values_cannot_widen_the_query(client: Any) -> None:
    for hostile in ["*", "type:user", '" OR "', "-jane", 'jane" name:"john', "j*"]:
        resp = await client.post(f"{API}/customers", json={"email": hostile}, headers=AUTH)
        assert resp.status == 204, hostile


async def test_search_bad_bodies_are_400_with_fields(client: Any) -> None:
    cases = [
        ({"shoeSize": "42"}, "shoeSize"),
        ({"notes": "x"}, "notes"),  # not searchable
        ({"email": ["a"]}, "email"),
    ]
    for body, field in cases:
        resp = await client.post(f"{API}/customers", json=body, headers=AUTH)
        assert resp.status == 400
        assert [f["name"] for f in (await resp.json())["fields"]] == [field]
    json_type = {**AUTH, "Content-Type": "application/json"}
    for raw in (b"{not json", b"[1,2]", b""):
        resp = await client.post(f"{API}/customers", data=raw, headers=json_type)
        assert resp.status == 400
        assert (await resp.json())["fields"] == []


async def test_search_values_follow_the_field_types_as_writes_do(client: Any) -> None:
    """`{"email": 5}` was searched as "5" (204), a checkbox searchable in meta refused `true`
    ("Must be text") and took `"yes"`: a search value is checked as a write's is."""
    for body, problem in [
        ({"email": 5}, "Must be text."),
        ({"name": True}, "Must be text."),
        ({"vip_level": 1.5}, "Must be text."),
        ({"newsletter": "yes"}, "Must be true or false."),
        ({"newsletter": 1}, "Must be true or false."),
        ({"newsletter": None}, "Must be true or false."),
    ]:
        (key,) = body
        writes = [("PATCH", "/customer/1003")] if body[key] is not None else []  # null clears
        for method, path in [("POST", "/customers"), *writes]:
            resp = await client.request(method, API + path, json=body, headers=AUTH)
            assert resp.status == 400, (method, body)
            fields = (await resp.json())["fields"]
            assert fields == [{"name": key, "errorMessage": problem}], (method, body)
    meta = await (await client.get(f"{API}/meta/object/customer", headers=AUTH)).json()
    (newsletter,) = [f for f in meta["fields"] if f["name"] == "newsletter"]
    assert newsletter["type"] == "checkbox" and newsletter["searchable"] is True
    for value in (True, "true", "TRUE"):
        resp = await client.post(f"{API}/customers", json={"newsletter": value}, headers=AUTH)
        assert resp.status == 200, value
        found = await resp.json()
        assert [c["id"] for c in found] == ["1001"] and found[0]["newsletter"] is True


async def test_bestmatch_orders_by_strategy_and_dedupes(client: Any) -> None:
    body = {
        "displayName": "John Smith",
        "screenName": "@JaneDoe",
        "email": "jane@example.com",
        "profileUrl": "https://twitter.com/janedoe",
    }
    resp = await client.post(f"{API}/customer/bestmatch", json=body, headers=AUTH)
    assert resp.status == 200
    assert [c["id"] for c in await resp.json()] == ["1001", "1002"]


async def test_bestmatch_phone_and_none(client: Any) -> None:
    phones = {"phoneNumbers": ["+1 555 999 0000", "+1 (555) 123-4567"]}
    found = await (await client.post(f"{API}/customer/bestmatch", json=phones, headers=AUTH)).json()
    assert [c["id"] for c in found] == ["1002"]
    none = await client.post(
        f"{API}/customer/bestmatch", json={"displayName": "Nobody"}, headers=AUTH
    )
    assert none.status == 200 and await none.json() == []
    name_only = {"displayName": "Jane"}  # best match by name is exact, not fuzzy
    assert (
        await (await client.post(f"{API}/customer/bestmatch", json=name_only, headers=AUTH)).json()
        == []
    )


async def test_bestmatch_wrong_types_are_400(client: Any) -> None:
    resp = await client.post(
        f"{API}/customer/bestmatch", json={"phoneNumbers": "123"}, headers=AUTH
    )
    assert resp.status == 400
    assert (await resp.json())["fields"][0]["name"] == "phoneNumbers"


async def test_bestmatch_accepts_the_spec_example_fields(client: Any) -> None:
    spec = json.loads((SPECS / "khoros-custom-crm-callback.openapi.json").read_text())
    props = spec["paths"]["/customer/bestmatch"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]["properties"]
    body = {
        k: (["x"] if v["type"] == "array" and k != "addresses" else "x")
        for k, v in props.items()
        if k != "addresses"
    }
    body["addresses"] = [{"streetOne": "1 Main St", "city": "Zurich", "zip": "8000"}]
    resp = await client.post(f"{API}/customer/bestmatch", json=body, headers=AUTH)
    assert resp.status == 200


async def test_create_customer_with_custom_fields_and_social_handle(client: Any) -> None:
    body = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "phone": "0044 20 7946 0000",
        "twitter": "@ada",
        "vip_level": "platinum",
        "newsletter": "true",
        "birthday": "1815-12-10",
        "organization": "Analytical Engines",
    }
    resp = await client.post(f"{API}/customer", json=body, headers=AUTH)
    assert resp.status == 201
    made = await resp.json()
    assert made["phone"] == "+442079460000"
    assert made["twitter"] == "ada" and made["vip_level"] == "platinum"
    assert made["newsletter"] is True and made["organization"] == "Analytical Engines"
    again = await (await client.get(f"{API}/customer/{made['id']}", headers=AUTH)).json()
    assert again == made


async def test_create_customer_upstream_validation_is_422_under_spec_names(client: Any) -> None:
    resp = await client.post(
        f"{API}/customer", json={"name": "Copy", "email": "JANE@example.com"}, headers=AUTH
    )
    assert resp.status == 422
    body = await resp.json()
    assert body["error"] == "ValidationError"
    assert [f["name"] for f in body["fields"]] == ["email"]
    assert "already being used" in body["fields"][0]["errorMessage"]


async def test_create_customer_local_validation(client: Any) -> None:
    resp = await client.post(
        f"{API}/customer", json={"name": "X", "vip_level": "bronze"}, headers=AUTH
    )
    assert resp.status == 422
    assert (await resp.json())["fields"][0]["name"] == "vip_level"
    resp = await client.post(
        f"{API}/customer", json={"name": "X", "birthday": "someday"}, headers=AUTH
    )
    assert resp.status == 422
    resp = await client.post(
        f"{API}/customer", json={"name": 7, "newsletter": "maybe"}, headers=AUTH
    )
    assert resp.status == 400
    assert {f["name"] for f in (await resp.json())["fields"]} == {"name", "newsletter"}
    resp = await client.post(f"{API}/customer", json={"id": "5", "name": "X"}, headers=AUTH)
    assert resp.status == 400


async def test_a_phone_extension_is_kept_apart_and_does_not_change_matching(
    client: Any, store: Store
) -> None:
    body = {"name": "Ext Tester", "phone": "+1 (555) 000-1111 ext 5"}
    resp = await client.post(f"{API}/customer", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()
    made = await resp.json()
    assert made["phone"] == "+15550001111" and made["phone_extension"] == "5"
    user = store.users[int(made["id"])]
    assert user["phone"] == "+15550001111" and user["user_fields"]["phone_extension"] == "5"
    for query in ("+1 555 000 1111", "+15550001111 x9"):
        found = await client.post(f"{API}/customers", json={"phone": query}, headers=AUTH)
        assert [c["id"] for c in await found.json()] == [made["id"]], query
    best = {"phoneNumbers": ["+1 (555) 000-1111 ext 5"]}
    found = await (await client.post(f"{API}/customer/bestmatch", json=best, headers=AUTH)).json()
    assert [c["id"] for c in found] == [made["id"]]
    routed = await client.get("/customer", headers=EF_AUTH, params={"query": "phone:+15550001111"})
    assert (await routed.json())["_id"] == made["id"]
    # A new number without an extension takes the old one's extension away ...
    path = f"{API}/customer/{made['id']}"
    changed = await (await client.patch(path, json={"phone": "+15550002222"}, headers=AUTH)).json()
    assert changed["phone"] == "+15550002222" and "phone_extension" not in changed
    # ... unless the body sets the extension itself.
    both = {"phone": "+1 555 000 3333 ext 7", "phone_extension": "8"}
    changed = await (await client.patch(path, json=both, headers=AUTH)).json()
    assert changed["phone"] == "+15550003333" and changed["phone_extension"] == "8"


async def test_a_phone_that_is_no_number_is_400_naming_the_field(
    client: Any, store: Store, sandbox: Any
) -> None:
    users = len(store.users)
    for number in ("079 123 45 67", "n/a", "1111", "+41 79"):
        resp = await client.post(
            f"{API}/customer", json={"name": "X", "phone": number}, headers=AUTH
        )
        assert resp.status == 400, number
        body = await resp.json()
        assert [f["name"] for f in body["fields"]] == ["phone"]
        assert "country code" in body["fields"][0]["errorMessage"]
        resp = await client.patch(f"{API}/customer/1002", json={"phone": number}, headers=AUTH)
        assert resp.status == 400 and (await resp.json())["fields"][0]["name"] == "phone"
    assert len(store.users) == users and store.users[1002]["phone"] == "+15551234567"
    # Searching for it finds no one, without asking the CRM.
    resp = await client.post(f"{API}/customers", json={"phone": "n/a 12"}, headers=AUTH)
    assert resp.status == 204
    assert not any("/search" in call for call in sandbox.app[CALLS])


async def test_a_default_region_writes_national_numbers_in_e164(
    make_client: Any, config: Config, store: Store
) -> None:
    client = await make_client(tuned(config, phones={"default_region": "CH"}))
    resp = await client.post(
        f"{API}/customer", json={"name": "Heidi", "phone": "044 668 18 00"}, headers=AUTH
    )
    assert resp.status == 201
    made = await resp.json()
    assert (
        made["phone"] == "+41446681800" and store.users[int(made["id"])]["phone"] == made["phone"]
    )
    found = await client.post(f"{API}/customers", json={"phone": "0446681800"}, headers=AUTH)
    assert [c["id"] for c in await found.json()] == [made["id"]]


async def test_update_customer_is_201_and_partial(client: Any) -> None:
    resp = await client.patch(
        f"{API}/customer/1002",
        json={"notes": "Called twice.", "vip_level": "gold", "twitter": "jsmith"},
        headers=AUTH,
    )
    assert resp.status == 201
    body = await resp.json()
    assert body["notes"] == "Called twice." and body["vip_level"] == "gold"
    assert body["twitter"] == "jsmith"
    assert body["name"] == "John Smith" and body["facebook"] == "100004242"


async def test_update_customer_unknown_is_404(client: Any) -> None:
    resp = await client.patch(f"{API}/customer/424242", json={"notes": "x"}, headers=AUTH)
    assert resp.status == 404


# -- cases -------------------------------------------------------------------------------------


async def test_customer_cases(client: Any, store: Store) -> None:
    resp = await client.get(f"{API}/customer/1001/cases", headers=AUTH)
    assert resp.status == 200
    cases = await resp.json()
    assert {c["id"] for c in cases} == {"5001", "5002"}
    by_id = {c["id"]: c for c in cases}
    assert by_id["5001"]["status"] == "open" and by_id["5002"]["status"] == "closed"
    case = by_id["5001"]
    assert case["url"] == case["linkUrl"] == f"{store.base_url}/agent/tickets/5001"
    assert case["number"] == "5001" and case["customerId"] == "1001"
    assert case["title"] == "Order arrived damaged" and case["orderNumber"] == "A-1001"
    assert case["created"].endswith("Z") and case["lastUpdated"].endswith("Z")
    assert (await client.get(f"{API}/customer/1003/cases", headers=AUTH)).status == 200
    assert (await client.get(f"{API}/customer/999/cases", headers=AUTH)).status == 404


async def test_create_case_with_interactions(client: Any, store: Store) -> None:
    body = {
        "customerId": "1001",
        "title": "Broken screen",
        "priority": "urgent",
        "custom_360002": "product_phone",
        "custom_360003": True,
        "interactions": [interaction("1"), interaction("2", "Still broken")],
    }
    resp = await client.post(f"{API}/case", json=body, headers=AUTH)
    assert resp.status == 201
    case = await resp.json()
    assert case["title"] == "Broken screen" and case["status"] == "open"
    assert case["customerId"] == "1001" and case["custom_360002"] == "product_phone"
    assert case["custom_360003"] is True
    comments = store.comments[int(case["id"])]
    assert len(comments) == 1 and not comments[0]["public"]
    text = comments[0]["body"]
    assert "My screen broke!" in text and "Still broken" in text
    assert "[khoros:twitter:1]" in text and "[khoros:twitter:2]" in text
    assert "Jane Doe (@janedoe) on twitter" in text


async def test_create_case_accepts_custid_typo_and_int_id(client: Any) -> None:
    resp = await client.post(f"{API}/case", json={"customId": 1001, "title": "Typo"}, headers=AUTH)
    assert resp.status == 201
    assert (await resp.json())["customerId"] == "1001"


async def test_create_case_repeated_returns_the_same_ticket(client: Any, store: Store) -> None:
    body = {"customerId": "1001", "title": "Once", "interactions": [interaction("77")]}
    first = await (await client.post(f"{API}/case", json=body, headers=AUTH)).json()
    second = await (await client.post(f"{API}/case", json=body, headers=AUTH)).json()
    assert first["id"] == second["id"]
    assert sum(t["subject"] == "Once" for t in store.tickets.values()) == 1


async def test_create_case_errors(client: Any) -> None:
    unknown = await client.post(
        f"{API}/case", json={"customerId": "777", "title": "x"}, headers=AUTH
    )
    assert unknown.status == 404
    missing = await client.post(f"{API}/case", json={"interactions": "x"}, headers=AUTH)
    assert missing.status == 400
    names = {f["name"] for f in (await missing.json())["fields"]}
    assert names == {"customerId", "title", "interactions"}
    bad_inter = {"customerId": "1001", "title": "x", "interactions": [{"body": "hi"}]}
    resp = await client.post(f"{API}/case", json=bad_inter, headers=AUTH)
    assert resp.status == 400
    assert "interactions[0].serviceId" in {f["name"] for f in (await resp.json())["fields"]}
    bad_value = {"customerId": "1001", "title": "x", "custom_360002": "product_car"}
    resp = await client.post(f"{API}/case", json=bad_value, headers=AUTH)
    assert resp.status == 422
    assert (await resp.json())["fields"][0]["name"] == "custom_360002"


async def test_create_case_spec_request_example(client: Any) -> None:
    spec = json.loads((SPECS / "khoros-custom-crm-callback.openapi.json").read_text())
    example = spec["paths"]["/case"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]["Request Example"]["value"]
    # As printed: its placeholder custom properties are not fields of this CRM.
    resp = await client.post(f"{API}/case", json=example, headers=AUTH)
    assert resp.status == 400
    assert {f["name"] for f in (await resp.json())["fields"]} == {
        "customCasePropertyOne",
        "customCasePropertyTwo",
    }
    real = {k: v for k, v in example.items() if not k.startswith("custom")}
    real["customerId"] = "1001"
    resp = await client.post(f"{API}/case", json=real, headers=AUTH)
    assert resp.status == 201


async def test_find_case(client: Any, store: Store) -> None:
    # An agent's reply typing a marker is no interaction: only the audits' records say which.
    store.update_ticket(5001, {"comment": {"body": "See [khoros:twitter:1] above"}})
    resp = await client.get(f"{API}/case/5001", headers=AUTH)
    assert resp.status == 200
    found = await resp.json()
    assert found["title"] == "Order arrived damaged" and found["interactions"] == []
    assert (await client.get(f"{API}/case/9999", headers=AUTH)).status == 404
    assert (await client.get(f"{API}/case/x.y", headers=AUTH)).status == 404


async def test_update_case_appends_each_interaction_once(client: Any, store: Store) -> None:
    body = {"customerId": "1001", "title": "Dedupe", "interactions": [interaction("1")]}
    case = await (await client.post(f"{API}/case", json=body, headers=AUTH)).json()
    update = {"interactions": [interaction("1"), interaction("2", "Reply"), interaction("2")]}
    for _ in range(2):  # a repeated PATCH adds nothing more
        resp = await client.patch(f"{API}/case/{case['id']}", json=update, headers=AUTH)
        assert resp.status == 200
    bodies = [c["body"] for c in store.comments[int(case["id"])]]
    assert len(bodies) == 2
    assert "[khoros:twitter:2]" in bodies[1] and "[khoros:twitter:1]" not in bodies[1]
    read = await (await client.get(f"{API}/case/{case['id']}", headers=AUTH)).json()
    assert [(i["serviceId"], i["body"]) for i in read["interactions"]] == [
        ("1", "My screen broke!"),
        ("2", "Reply"),
    ]


async def test_update_case_fields_and_status(client: Any) -> None:
    resp = await client.patch(
        f"{API}/case/5001", json={"title": "Damaged order", "status": "closed"}, headers=AUTH
    )
    assert resp.status == 200
    case = await resp.json()
    assert case["title"] == "Damaged order" and case["status"] == "closed"


async def test_update_case_errors(client: Any) -> None:
    assert (await client.patch(f"{API}/case/9999", json={}, headers=AUTH)).status == 404
    resp = await client.patch(f"{API}/case/5001", json={"status": "archived"}, headers=AUTH)
    assert resp.status == 422
    resp = await client.patch(f"{API}/case/5001", json={"number": "7"}, headers=AUTH)
    assert resp.status == 400  # read-only field


async def test_update_closed_ticket_is_422_under_status(client: Any, store: Store) -> None:
    store.tickets[5002]["status"] = "closed"
    resp = await client.patch(f"{API}/case/5002", json={"title": "Reopen?"}, headers=AUTH)
    assert resp.status == 422
    assert [f["name"] for f in (await resp.json())["fields"]] == ["status"]


# -- limits on what a caller may send ---------------------------------------------------------


async def test_a_body_over_1_mb_is_413_with_the_error_body(client: Any) -> None:
    big = {"notes": "x" * (1024 * 1024 + 1)}
    resp = await client.post(f"{API}/customer", json=big, headers=AUTH)
    assert resp.status == 413
    assert (await resp.json())["error"] == "PayloadTooLarge"


async def test_a_body_that_is_not_json_is_415(client: Any) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        resp = await client.post(
            f"{API}/customer", data=b'{"name": "x"}', headers={**AUTH, "Content-Type": content_type}
        )
        assert resp.status == 415, content_type
        assert (await resp.json())["error"] == "UnsupportedMediaType"
    ok = {**AUTH, "Content-Type": "application/json; charset=utf-8"}
    assert (
        await client.post(f"{API}/customer", data=b'{"name": "Utf Eight"}', headers=ok)
    ).status == 201


async def test_too_deep_too_long_too_many_are_400_with_fields(client: Any) -> None:
    deep: Any = "x"
    for _ in range(20):
        deep = {"a": deep}
    cases = [
        ({"customerId": "1001", "title": "t", "deep": deep}, "deep.a.a.a"),
        ({"name": "x" * 100_001}, "name"),
        ({"customerId": "1001", "title": "t", "interactions": [{}] * 1001}, "interactions"),
    ]
    for body, field in cases:
        resp = await client.post(
            f"{API}/case" if "title" in body else f"{API}/customer", json=body, headers=AUTH
        )
        assert resp.status == 400
        names = [f["name"] for f in (await resp.json())["fields"]]
        assert any(n == field or n.startswith(field + ".") for n in names), names
