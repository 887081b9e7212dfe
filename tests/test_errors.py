"""The one error tree: each error its status and type, a body the agent can read (with the
tracking id, and `fields` on 400 and 422), and nothing for the operator's eyes only."""

from __future__ import annotations

import pytest

from gateway import errors
from gateway.errors import (
    BadRequest,
    ConfigError,
    FieldError,
    GatewayError,
    IdempotencyMismatch,
    UpstreamUnavailable,
    ValidationFailed,
    for_status,
    retry_after,
)


def test_every_error_has_its_own_type_and_a_status_of_its_kind() -> None:
    tree = [e for e in vars(errors).values() if isinstance(e, type) and issubclass(e, GatewayError)]
    assert len(tree) >= 18
    for kind in tree:
        if issubclass(kind, errors.ClientError):
            assert 400 <= kind.status < 500, kind
        elif issubclass(kind, errors.UpstreamError):
            assert 500 <= kind.status < 600, kind
    assert IdempotencyMismatch.status == 502 and issubclass(IdempotencyMismatch, errors.BadGateway)


def test_the_body_carries_the_tracking_id_and_fields_only_where_they_belong() -> None:
    bad = BadRequest(fields=[FieldError("title", "Is required.")], detail="for the log")
    assert bad.body("t-1") == {
        "error": "BadRequest",
        "message": "The request is not valid. (tracking id: t-1)",
        "fields": [{"name": "title", "errorMessage": "Is required."}],
    }
    assert ValidationFailed().body("t")["fields"] == []  # 422: always the list
    busy = UpstreamUnavailable(detail="GET /x -> 429").body("t")
    assert "fields" not in busy and "429" not in str(busy)  # the detail is the operator's


def test_a_wait_is_whole_seconds_at_least_one() -> None:
    assert [retry_after(s) for s in (0, 0.2, 1, 1.01, 59.5)] == ["1", "1", "1", "2", "60"]
    limited = UpstreamUnavailable.rate_limited(2.3, detail="PUT /users/{id}: held")
    assert limited.status == 503 and limited.headers == {"Retry-After": "3"}
    assert "slow down" in limited.message and limited.detail == "PUT /users/{id}: held"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, "NotFound"),
        (405, "MethodNotAllowed"),
        (413, "PayloadTooLarge"),
        (500, "InternalError"),
    ],
)
def test_the_frameworks_answers_become_errors_of_the_tree(status: int, error: str) -> None:
    made = for_status(status, headers={"Allow": "GET"})
    assert (made.status, made.error, made.headers) == (status, error, {"Allow": "GET"})


def test_an_unknown_client_status_keeps_its_status() -> None:
    assert for_status(431).status == 431 and for_status(431).error == "BadRequest"


def test_a_config_error_names_file_line_and_key_of_every_problem() -> None:
    first = ConfigError("c.yaml", 3, "auth.api_keys", "no API key is set")
    first.more = [ConfigError("c.yaml", None, "", "not valid YAML")]
    assert str(first).splitlines() == [
        "c.yaml:3: auth.api_keys: no API key is set",
        "c.yaml: (top level): not valid YAML",
    ]
