"""Every error envelope Zendesk answers with (docs/behaviour.md §3), through the one translation."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import ROOT, events
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

MAPPING = load_mapping(ROOT / "mappings/zendesk.yaml")
CUSTOMER = MAPPING.objects["customer"].fields
TIER = FieldSpec(name="tier", label="Tier", read=CUSTOMER[0].read, error_key="360005")


def response(status: int, data: Any = None, text: str = "", **headers: str) -> Response:
    return Response(status, CIMultiDictProxy(CIMultiDict(headers)), data, text)


def run(resp: Response, not_found: str | None = None) -> GatewayError:
    return translate(MAPPING.errors, resp, "GET /api/v2/x/{{ id }}", not_found, [*CUSTOMER, TIER])


def test_validation_details_map_to_spec_names() -> None:
    err = run(response(422, {
        "error": "RecordInvalid", "description": "Record validation errors",
        "details": {
            "email": [{"description": "Email: x is already being used", "error": "DuplicateValue"}],
            "base": [{"description": "Tier: bad", "error": "InvalidValue", "field_key": 360005},
                     {"description": "Plan limit", "error": "Limit"}],
            "external_id": [{"type": "blank", "description": "External id: blank"}],
        },
    }))  # fmt: skip
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
        "status": [{"description": "Status: closed prevents ticket update"}]}}), "PUT x", None,
        [status])  # fmt: skip
    assert isinstance(err, ValidationFailed) and err.fields[0].name == "status"


@pytest.mark.parametrize(
    ("resp", "not_found", "kind", "status"),
    [
        (response(404, {"error": "RecordNotFound", "description": "Not found"}), "customer",
         NotFound, 404),
        (response(404, {"error": "InvalidEndpoint", "description": "Not found"}), None,
         BadGateway, 502),
        (response(401, {"error": "Couldn't authenticate you"}), None, BadGateway, 502),
        (response(403, {"error": {"title": "Forbidden", "message": "No"}}), None, BadGateway, 502),
        (response(400, {"errors": [{"code": "InvalidPaginationDepth", "title": "x"}]}), None,
         BadGateway, 502),
        (response(422, {"error": "invalid", "description": "Requested response size was greater "
                        "than Search Response Limits"}), None, ValidationFailed, 422),
        (response(503, {"error": "unavailable", "description": "Sorry"}), None, BadGateway, 502),
        (response(400, {"error": "IdempotentRequestError", "description": "Request parameters "
                        "don't match the given idempotency key"}), None, IdempotencyMismatch, 502),
        (response(409, {"error": "UpdateConflict"}), None, UpdateConflict, 502),
        (response(429, None, "You have exceeded the rate limit", **{"Retry-After": "7"}), None,
         UpstreamUnavailable, 503),
        (response(500, None, "<html>Internal</html>"), None, BadGateway, 502),
    ],
)  # fmt: skip
def test_every_envelope(resp: Response, not_found: str | None, kind: type, status: int) -> None:
    err = run(resp, not_found)
    assert type(err) is kind and err.status == status
    assert "{" not in err.message  # short and human: never an upstream body


def test_403_object_error_is_logged_by_its_title(capsys: Any) -> None:
    run(response(403, {"error": {"title": "Forbidden", "message": "Scope missing"}}))
    (line,) = events(capsys.readouterr().out)
    assert line["upstream_error"] == "Forbidden"
