"""Fuzzing (schemathesis) of a real gateway in front of the sandbox: our own /openapi.json, and
Khoros's published schema (its CRM paths). Zero 5xx, and every answer as documented. Bounded
for `make test` (FUZZ_EXAMPLES, default 40 per operation); `make fuzz` runs many more."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import (
    AUTH,
    EF_AUTH,
    ROOT,
    SPECS,
    free_port,
    gateway,
    gateway_env,
    raw_http,
    tuned,
    wait_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api import OPERATIONS
from gateway.app import create_app
from gateway.config import Config, load_config
from gateway.mapping.spec import load_mapping
from gateway.openapi import document
from gateway.sandbox.seed import seed
from gateway.sandbox.store import Store

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
KEY = "fuzz-key-1234"
OURS = schemathesis.openapi.from_dict(document(OPERATIONS, {"khoros": "/api/v1"}))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def khoros_schema() -> Any:
    spec = json.loads((SPECS / "khoros-custom-crm-callback.openapi.json").read_text())
    spec["paths"] = {
        p: v for p, v in spec["paths"].items() if not p.startswith(("/list", "/asset"))
    }
    spec["servers"] = [{"url": "/api/v1"}]
    return schemathesis.openapi.from_dict(spec)


KHOROS = khoros_schema()
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """`crm-gateway demo` as a user starts it: the sandbox and the gateway, stopped at the end."""
    import signal

    port, sandbox_port = free_port(), free_port()
    proc = gateway(
        "demo",
        "--config",
        "config.example.yaml",
        "--port",
        str(port),
        "--sandbox-port",
        str(sandbox_port),
        env={"GATEWAY_API_KEYS": KEY, "GATEWAY_ADMIN_KEY": ADMIN_KEY, "ZENDESK_URL": None},
        quiet=True,
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


@OURS.parametrize()
@FUZZ
def test_our_api_never_fails_and_answers_as_documented(case: Any, server: str) -> None:
    case.call_and_validate(base_url=server, headers={"Authorization": KEY}, checks=CHECKS)


@KHOROS.parametrize()
@FUZZ
def test_khoros_schema_never_makes_a_5xx(case: Any, server: str) -> None:
    case.call_and_validate(
        base_url=server + "/api/v1", headers={"Authorization": KEY}, checks=[not_a_server_error]
    )


# -- raw bytes: headers and bodies no client library would send -----------------------------------

ADMIN_KEY = "fuzz-admin-5678"
PATHS = [
    "/api/v1/customer/1001", "/api/v1/customer/1001/cases", "/api/v1/case/5001", "/api/v1/case",
    "/api/v1/customer", "/api/v1/customers", "/api/v1/customer/bestmatch",
    "/api/v1/meta/object/customer", "/customer?query=phone:%2B41791234567", "/label",
    "/admin/cache/purge", "/healthz", "/openapi.json", "/nope", "/api/v1/customer/%ff%fe",
]  # fmt: skip
HEADERS = [
    b"Authorization", b"X-Debug-Trace", b"X-API-Key", b"X-Request-Id", b"x-sf-user-email",
    b"x-sf-email", b"x-sf-company-id", b"x-sf-initiative", b"Content-Type", b"Accept",
]  # fmt: skip
# What HTTP lets through to the application: visible ASCII, tab, and any byte over 0x7f (which
# is where text that is not UTF-8 hides). Control characters are refused by the HTTP parser.
FIELD_BYTES = st.binary(max_size=24).map(
    lambda b: bytes(c for c in b if c == 9 or 0x20 <= c <= 0x7E or c >= 0x80)
)
KEYS = st.sampled_from([KEY.encode(), ADMIN_KEY.encode(), b"Bearer " + KEY.encode(), b""])
VALUE = st.one_of(FIELD_BYTES, st.tuples(KEYS, FIELD_BYTES).map(lambda t: t[0] + t[1]), KEYS)
BODY = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b'{"name": "x\\ud800y"}', b"[" * 3000, b'{"caches": [[]]}', b"{}"]),
)


def raw_request(method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: fuzz", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@settings(max_examples=EXAMPLES * 5, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(["GET", "POST", "PATCH", "DELETE", "OPTIONS", "PUT"]),
    st.sampled_from(PATHS),
    # One of each: a repeated Content-Type is refused by the HTTP parser (400, plain text)
    # before the application sees the request, as are control characters.
    st.lists(st.tuples(st.sampled_from(HEADERS), VALUE), max_size=5, unique_by=lambda h: h[0]),
    BODY,
)
def test_raw_headers_and_bodies_never_make_a_5xx_or_plain_text(
    server: str, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    port = int(server.rsplit(":", 1)[1])
    status, answer_headers, answer = asyncio.run(
        raw_http(port, raw_request(method, path, headers, body))
    )
    assert status < 500, (status, answer[:200])
    assert "x-request-id" in answer_headers  # answered by the gateway, not the HTTP parser
    if status >= 400:
        assert answer_headers["content-type"].startswith("application/json"), answer[:200]
        error = json.loads(answer)
        assert error["error"] != "InternalError" and "tracking id" in error["message"]


# -- upstream answers: whatever the CRM sends, never a 500 ----------------------------------------

BROKEN = st.sampled_from(["\ud800", "\udfff", "\udc80", "\x00", "\u2028", "\ufffe"])
TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()) | BROKEN, max_size=12)
# Values the gateway searched for, so that records pass its re-check and reach the mapping.
SEARCHED = st.sampled_from(["+41791234567", "jane@example.com", 1001, "1001", "gold", 5001])
LEAF = st.none() | st.booleans() | st.integers() | st.floats() | TEXT | SEARCHED
JSON_VALUE = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
SEEDED = seed(Store())
# Real records, with some keys given odd values: the shapes that reach the mapping's reads.
BASES = {
    "user": {**SEEDED.users[1001], "identities": None},
    "identity": {"id": 1, "user_id": 1001, "type": "phone_number", "value": "+41791234567"},
    "organization": {"id": 20001, "name": "Acme AG"},
    "ticket": SEEDED.tickets[5001],
    "comment": SEEDED.comments[5001][0],
    "field": SEEDED.user_fields[0],
}


# The keys the mappings read, per kind of record: where an odd value matters.
READ = {
    "user": ["id", "name", "email", "phone", "identities", "user_fields", "tags",
             "organization_id", "created_at", "updated_at"],
    "identity": ["user_id", "type", "value"],
    "organization": ["id", "name"],
    "ticket": ["id", "subject", "description", "status", "priority", "custom_fields",
               "requester_id", "created_at", "updated_at", "type"],
    "comment": ["id", "body", "author_id", "public", "created_at"],
    "field": ["key", "title", "type", "active", "custom_field_options", "id"],
}  # fmt: skip


def mutated(kind: str) -> st.SearchStrategy[Any]:
    base = BASES[kind]
    changes = st.dictionaries(st.sampled_from(READ[kind]), JSON_VALUE, max_size=3)
    return changes.map(lambda odd: {**base, **odd})


def some(kind: str) -> st.SearchStrategy[list[Any]]:
    return st.lists(mutated(kind) | JSON_VALUE, max_size=2)


# One answer with every envelope the mapping reads, so each operation meets odd records.
ENVELOPE = st.fixed_dictionaries(
    {
        "user": mutated("user") | JSON_VALUE, "users": some("user"),
        "identities": some("identity"), "organizations": some("organization"),
        "ticket": mutated("ticket") | JSON_VALUE, "tickets": some("ticket"),
        "comments": some("comment"),
        "user_fields": some("field") | JSON_VALUE, "ticket_fields": some("field") | JSON_VALUE,
    },
    optional={
        "next_page": JSON_VALUE, "count": JSON_VALUE, "error": JSON_VALUE, "audit": JSON_VALUE,
        "description": JSON_VALUE, "details": st.dictionaries(TEXT, some("comment"), max_size=2),
    },
)  # fmt: skip
UPSTREAM_BODY = st.one_of(
    ENVELOPE.map(lambda v: json.dumps(v).encode()),
    JSON_VALUE.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=80),
    st.sampled_from(
        [b"", b"[[[]]]", b"null", b"{}", b'{"user": {"id": 1e400}}', b"[" * 3000 + b"]" * 3000]
    ),
)
UPSTREAM_HEADERS = st.dictionaries(
    st.sampled_from(["Retry-After", "Content-Type", "ratelimit-remaining", "ratelimit-reset",
                     "X-Rate-Limit-Remaining", "Location"]),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
    | st.sampled_from(["0", "1", "-5", "1e309", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    max_size=3,
)  # fmt: skip
CALLS = [
    ("GET", "/api/v1/meta/object/customer", None),
    ("GET", "/api/v1/meta/object/case", None),
    ("GET", "/api/v1/customer/1001", None),
    ("GET", "/api/v1/customer/1001/cases", None),
    ("GET", "/api/v1/case/5001", None),
    ("POST", "/api/v1/customers", {"email": "jane@example.com"}),
    ("POST", "/api/v1/customer/bestmatch", {"email": "j@x.com", "phoneNumbers": ["+41791234567"]}),
    ("POST", "/api/v1/customer", {"name": "Ada", "email": "ada@example.com"}),
    ("PATCH", "/api/v1/customer/1001", {"notes": "hi"}),
    ("POST", "/api/v1/case", {"customerId": "1001", "title": "T", "interactions": []}),
    ("PATCH", "/api/v1/case/5001", {"status": "closed"}),
    ("GET", "/customer?query=phone:%2B41791234567", None),
    ("GET", "/label", None),
]
MAPPING = load_mapping(ROOT / "mappings/zendesk.yaml")


@pytest.fixture(scope="module")
def one_attempt(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The example config with one attempt per call and short waits: every answer is final."""
    text = (ROOT / "config.example.yaml").read_text()
    text = text.replace("attempts: 3", "attempts: 1")
    text = text.replace("max_retry_after_seconds: 60", "max_retry_after_seconds: 0.01")
    text = text.replace("mappings/zendesk.yaml", str(ROOT / "mappings/zendesk.yaml"))
    path = tmp_path_factory.mktemp("fuzz") / "gateway.yaml"
    path.write_text(text)
    return load_config(path, env=gateway_env("http://127.0.0.1:1"))


# An odd value (a number, null, an object, broken text) in one key a mapping reads, the rest
# of the answer valid: every call that reads that kind of record.
ODD = [123, None, {"a": [1]}, "x\ud800\x00"]
READERS = {
    "user": ["/api/v1/customer/1001", "/api/v1/customers", "/api/v1/customer/bestmatch",
             "/api/v1/customer", "PATCH /api/v1/customer/1001", "/customer?query"],
    "organization": ["/api/v1/customer/1001", "/api/v1/customers"],
    "ticket": ["/api/v1/customer/1001/cases", "/api/v1/case/5001", "/api/v1/case",
               "PATCH /api/v1/case/5001"],
    "comment": ["/api/v1/case/5001", "PATCH /api/v1/case/5001"],
    "field": ["/api/v1/meta/object/customer", "/api/v1/meta/object/case", "/label",
              "/api/v1/customer/1001"],
}  # fmt: skip
READERS["identity"] = READERS["user"]


def readers(kind: str) -> list[tuple[str, str, Any]]:
    wanted = READERS[kind]
    return [
        c for c in CALLS
        if any(w == c[1] or w == f"{c[0]} {c[1]}" or (w.endswith("?query") and c[1].startswith(w))
               for w in wanted)
    ]  # fmt: skip


def answer_with(kind: str, key: str, odd: Any) -> dict[str, Any]:
    r = {k: dict(v) for k, v in BASES.items()}
    r[kind][key] = odd
    return {
        "user": r["user"], "users": [r["user"]], "identities": [r["identity"]],
        "organizations": [r["organization"]], "ticket": r["ticket"], "tickets": [r["ticket"]],
        "comments": [r["comment"]], "user_fields": [r["field"], *SEEDED.user_fields[1:]],
        "ticket_fields": [r["field"], *SEEDED.ticket_fields], "count": 1,
    }  # fmt: skip


@pytest.mark.parametrize(("kind", "key"), [(k, key) for k, keys in READ.items() for key in keys])
def test_an_odd_value_in_any_key_read_never_makes_a_500(
    one_attempt: Config, kind: str, key: str
) -> None:
    calls = readers(kind)
    assert calls
    for odd in ODD:
        crm = FakeCrm(200, {}, json.dumps(answer_with(kind, key, odd)).encode(), good=False)
        answers = asyncio.run(_through_the_gateway(one_attempt, crm, calls))
        for call, answer in zip(calls, answers, strict=True):
            assert answer[0] != 500, (call, odd, answer)
            _assert_answered(*answer)


UPSTREAM = settings(
    max_examples=EXAMPLES // 4, deadline=None, suppress_health_check=list(HealthCheck)
)


@pytest.mark.parametrize("call", CALLS, ids=[f"{m} {p}" for m, p, _ in CALLS])
@UPSTREAM
@given(ENVELOPE, st.sampled_from([True, True, True, False]))
def test_odd_records_never_make_a_500(
    one_attempt: Config, call: tuple[str, str, Any], envelope: Any, good_fields: bool
) -> None:
    """Real records with odd values in them (types, broken text, shapes) reach every read."""
    crm = FakeCrm(200, {}, json.dumps(envelope).encode(), good_fields)
    _assert_answered(*asyncio.run(_through_the_gateway(one_attempt, crm, [call]))[0])


@settings(max_examples=EXAMPLES * 3 // 2, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(CALLS),
    st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 422, 429, 500, 503]),
    UPSTREAM_HEADERS,
    UPSTREAM_BODY,
    st.booleans(),
)
def test_odd_answers_never_make_a_500(
    one_attempt: Config,
    call: tuple[str, str, Any],
    status: int,
    headers: dict[str, str],
    body: bytes,
    good_fields: bool,
) -> None:
    """Any status, headers and bytes; the field definitions with the sandbox's own, or not."""
    crm = FakeCrm(status, headers, body, good_fields)
    _assert_answered(*asyncio.run(_through_the_gateway(one_attempt, crm, [call]))[0])


def _assert_answered(code: int, content_type: str, text: str) -> None:
    assert code != 500, (code, text[:300])
    if code != 204:
        assert content_type.startswith("application/json"), text[:200]
        parsed = json.loads(text)
        if code >= 400:
            assert parsed["error"] != "InternalError" and "tracking id" in parsed["message"]


class FakeCrm:
    def __init__(self, status: int, headers: dict[str, str], body: bytes, good: bool) -> None:
        self.status, self.headers, self.body, self.good = status, headers, body, good

    async def answer(self, request: web.Request) -> web.Response:
        if self.good and request.path.startswith(("/api/v2/user_fields", "/api/v2/ticket_fields")):
            key = request.path.split("/")[3].split(".")[0]
            return web.json_response({key: getattr(SEEDED, key)})
        headers = {"Content-Type": "application/json", **self.headers}
        return web.Response(status=self.status, body=self.body, headers=headers)


async def _through_the_gateway(
    config: Config, crm: FakeCrm, calls: list[tuple[str, str, Any]]
) -> list[tuple[int, str, str]]:
    """Each call through a gateway of its own (fresh caches and breaker) in front of the CRM."""
    answers = []
    fake = web.Application()
    fake.router.add_route("*", "/{tail:.*}", crm.answer)
    async with TestServer(fake) as upstream:
        config = tuned(config, upstream={"base_url": str(upstream.make_url("")).rstrip("/")})
        async with TestServer(create_app(config, MAPPING)) as gw, TestClient(gw) as client:
            for method, path, payload in calls:
                headers = {**AUTH, **EF_AUTH}
                resp = await client.request(method, path, json=payload, headers=headers)
                answers.append(
                    (resp.status, resp.headers.get("Content-Type", ""), await resp.text())
                )
    return answers
