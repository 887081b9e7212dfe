"""/openapi.json describes every route the app serves, with the answers it gives."""

from __future__ import annotations

from typing import Any

from conftest import API, AUTH
from openapi_schema_validator import OAS31Validator


async def test_every_served_route_is_described(client: Any) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    described = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = set()
    for route in client.server.app.router.routes():
        if route.method in ("HEAD", "OPTIONS"):
            continue
        served.add((route.method, route.resource.canonical))
    assert served == described


async def test_answers_match_the_document(client: Any) -> None:
    doc = await (await client.get("/openapi.json")).json()

    def check(path: str, method: str, status: int, body: Any) -> None:
        responses = doc["paths"][path][method]["responses"]
        schema = responses[str(status)]["content"]["application/json"]["schema"]
        OAS31Validator({"components": doc["components"], "allOf": [schema]}).validate(body)

    cases = [
        ("get", f"{API}/customer/1001", f"{API}/customer/{{id}}", None),
        ("get", f"{API}/customer/1001/cases", f"{API}/customer/{{id}}/cases", None),
        ("get", f"{API}/case/5001", f"{API}/case/{{id}}", None),
        ("get", f"{API}/case/999", f"{API}/case/{{id}}", None),
        ("get", f"{API}/meta/object/case", f"{API}/meta/object/{{type}}", None),
        ("post", f"{API}/customers", f"{API}/customers", {"email": "jane@example.com"}),
        ("post", f"{API}/customer", f"{API}/customer", {"name": 7}),
        ("post", f"{API}/case", f"{API}/case", {"customerId": "1001", "title": "Doc check"}),
    ]
    for method, url, path, body in cases:
        resp = await client.request(method, url, json=body, headers=AUTH)
        check(path, method, resp.status, await resp.json())
    unauthorized = await client.get(f"{API}/customer/1001")
    check(f"{API}/customer/{{id}}", "get", 401, await unauthorized.json())
