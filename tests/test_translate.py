"""Every error envelope Zendesk answers with (docs/behaviour.md §3), through the one translation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import API, AUTH, ROOT, events
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.errors import (
    BadGateway,
    GatewayError,
    IdempotencyMismatch,
    NotFound,
    UpdateConflict,
    UpstreamUnavailable,
    ValidationFailed,
)
from gateway.exchange import Response
from gateway.mapping.model import FieldSpec
from gateway.mapping.spec import load_mapping
from gateway.mapping.translate import translate
from gateway.sandbox.server import Faults

MAPPING = load_mapping(ROOT / "mappings/zendesk.yaml")
CUSTOMER = MAPPING.objects["customer"].fields
TIER = FieldSpec(name="tier", label="Tier", read=CUSTOMER[0].read, error_key="360005")


def response(status: int, data: Any = None, text: str = "", **headers: str) -> Response:
    return Response(status, CIMultiDictProxy(CIMultiDict(headers)), data, text)


def run(resp: Response, not_found: str | None = None, method: str = "GET") -> GatewayError:
    return translate(
        MAPPING.errors, resp, method, "/api/v2/x/{{ id }}", not_found, [*CUSTOMER, TIER]
    )


def test_validation_details_map_to_spec_names() -> None:
    err = run(response(422, {
        "error": "RecordInvalid", "description": "Record validation errors",
        "details": {
            "email": [{"description": "Email: x is already being used", "error": "DuplicateValue"}],
            "base": [{"description": "Tier: bad", "error": "InvalidValue", "field_key": 360005},
                     {"description": "Plan limit", "error": "Limit"}],
            "external_id": [{"type": "blank", "description": "External id: blank"}],
        },
    }), method="PUT")  # fmt: skip
    assert isinstance(err, ValidationFailed) and err.status == 422
    assert [(f.name, f.message) for f in err.fields] == [
        ("email", "Email: x is already being used"),
        ("tier", "Tier: bad"),
        ("externalId", "External id: blank"),
    ]
    assert "Plan limit" in err.message


def test_closed_ticket_is_422_under_status() -> None:
    status = FieldSpec(name="status", label="Status", read=CUSTOMER[0].read, write="status")
    err = translate(MAPPING.errors, response(422, {"error": "RecordInvalid", "details": {
        "status": [{"description": "Status: closed prevents ticket update"}]}}), "PUT", "x", None,
        [status])  # fmt: skip
    assert isinstance(err, ValidationFailed) and err.fields[0].name == "status"


@pytest.mark.parametrize(
    ("method", "resp", "not_found", "kind", "status"),
    [
        ("GET", response(404, {"error": "RecordNotFound", "description": "Not found"}), "customer",
         NotFound, 404),
        ("GET", response(404, {"error": "InvalidEndpoint", "description": "Not found"}), None,
         BadGateway, 502),
        ("GET", response(401, {"error": "Couldn't authenticate you"}), None, BadGateway, 502),
        ("PUT", response(403, {"error": {"title": "Forbidden", "message": "No"}}), None,
         BadGateway, 502),
        ("GET", response(400, {"errors": [{"code": "InvalidPaginationDepth", "title": "x"}]}),
         None, BadGateway, 502),
        ("PUT", response(422, {"error": "invalid", "description": "Phone is too long"}), None,
         ValidationFailed, 422),
        ("GET", response(503, {"error": "unavailable", "description": "Sorry"}), None, BadGateway,
         502),
        ("POST", response(400, {"error": "IdempotentRequestError", "description": "Request "
                                "parameters don't match the given idempotency key"}), None,
         IdempotencyMismatch, 502),
        ("PUT", response(409, {"error": "UpdateConflict"}), None, UpdateConflict, 502),
        ("GET", response(429, None, "You have exceeded the rate limit", **{"Retry-After": "7"}),
         None, UpstreamUnavailable, 503),
        ("GET", response(500, None, "<html>Internal</html>"), None, BadGateway, 502),
    ],
)  # fmt: skip
def test_every_envelope(
    method: str, resp: Response, not_found: str | None, kind: type, status: int
) -> None:
    err = run(resp, not_found, method)
    assert type(err) is kind and err.status == status
    assert "{" not in err.message  # short and human: never an upstream body


@pytest.mark.parametrize(
    "resp",
    [
        response(422, {"error": "invalid", "description": "Requested response size was greater "
                       "than Search Response Limits"}),
        response(400, {"error": "InvalidValue", "details": {"email": [{"description": "bad"}]}}),
        response(409, {"error": "UpdateConflict", "description": "Locked"}),
        response(422, {"error": "RecordInvalid", "description": "Record validation errors"}),
    ],
)  # fmt: skip
def test_a_read_refused_by_the_crm_is_502_and_its_words_stay_in_the_log(resp: Response) -> None:
    """A 400/409/422 to a GET is the CRM refusing the gateway's request: the caller's values
    were not what it refused, and nothing was being updated."""
    err = run(resp, method="GET")
    assert type(err) is BadGateway and err.status == 502 and err.fields == []
    assert err.message == "The CRM refused the gateway's request."
    description = resp.data.get("description")
    assert err.detail is not None and err.detail.startswith(
        f"GET /api/v2/x/{{{{ id }}}} -> {resp.status}"
    )
    if description:
        assert description in err.detail and description not in err.message


@pytest.mark.parametrize(
    ("status", "refused"),
    [(401, True), (403, True), (409, True), (413, True), (418, True),
     (408, False), (499, False), (500, False), (502, False), (503, False)],
)  # fmt: skip
def test_a_write_the_crm_refused_is_known_not_applied(status: int, refused: bool) -> None:
    """A 4xx is the CRM refusing the call: a write it refused made nothing. A 5xx may come from
    a proxy after the CRM applied it, and so may a 408 or nginx's 499: those are not known."""
    err = run(response(status, {"error": "Whatever"}), method="POST")
    assert isinstance(err, BadGateway) and err.not_applied is refused


def test_403_object_error_is_logged_by_its_title(capsys: Any) -> None:
    run(response(403, {"error": {"title": "Forbidden", "message": "Scope missing"}}))
    (line,) = events(capsys.readouterr().out)
    assert line["upstream_error"] == "Forbidden"


@pytest.mark.parametrize("status", [400, 409, 422])
async def test_a_crm_refusing_a_read_is_502_through_the_gateway(
    client: Any, faults: Faults, status: int, capsys: Any
) -> None:
    """Find customer, when the CRM answers the user's GET with a 4xx of validation or conflict:
    not `ValidationError` with the CRM's own words, not "the record kept changing"."""
    faults.status, faults.method, faults.path_prefix = status, "GET", "/api/v2/users/1001"
    faults.body = json.dumps({"error": "InvalidValue", "description": "Internal field x-17 bad"})
    resp = await client.get(f"{API}/customer/1001", headers=AUTH)
    body = await resp.json()
    assert resp.status == 502 and body["error"] == "BadGateway"
    assert "refused the gateway's request" in body["message"] and "x-17" not in body["message"]
    (failed,) = [e for e in events(capsys.readouterr().out) if e["event"] == "request_failed"]
    assert "x-17" in failed["detail"]  # for the operator
