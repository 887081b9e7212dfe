"""Every error the gateway raises, in one tree, and the one place they become response bodies.

    GatewayError                      any failure a caller may see (500: a bug of ours)
    ├── ClientError                   the caller sent something we will not serve (4xx)
    │   ├── BadRequest                400  malformed JSON, wrong types, unknown fields
    │   ├── Unauthorized              401  missing or wrong API key
    │   ├── NotFound                  404  unknown record, unknown meta type, unknown path
    │   ├── MethodNotAllowed          405  a method the path does not serve (`Allow` lists them)
    │   ├── TooManyFailures           429  too many failed authentications from one address
    │   ├── PayloadTooLarge           413  a body over the limit
    │   ├── UnsupportedMediaType      415  a body that is not JSON
    │   ├── CaseClosed                409  a repeated create whose case is closed since
    │   └── ValidationFailed          422  the upstream refused a value
    └── UpstreamError                 the upstream CRM could not give an answer (5xx)
        ├── BadGateway                502  5xx, reset, refused, garbage, our credentials refused
        │   ├── AttemptFailed         502  one attempt: reset, refused, not JSON (retried if safe)
        │   ├── MappingFailed         502  a template or expression could not read the answer
        │   ├── UpdateConflict        502  the record changed under a guarded write (409)
        │   └── IdempotencyMismatch   502  same idempotency key, different request
        ├── UpstreamUnavailable       503  rate limited past the budget, circuit open
        ├── CreatePending             503  an earlier create of these values may still show up
        └── DeadlineExceeded          504  the request's budget ran out
            └── AttemptTimedOut       504  one attempt got no answer in time (retried if safe)

    ConfigError                       a config or mapping file is invalid (start-up, not HTTP)

Bodies follow the Khoros spec: ``{"error", "message"}`` plus ``fields`` on 400 and 422. The
``message`` is shown to an agent, so it is short, human and carries the tracking id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass(frozen=True)
class FieldError:
    """One field's problem, named as the caller knows the field."""

    name: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "errorMessage": self.message}


class GatewayError(Exception):
    status = 500
    error = "InternalError"
    default_message = "Something went wrong in the CRM gateway."

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        detail: str | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.fields = fields or []
        self.headers = headers or {}
        # For the operator's log only; never sent to the caller.
        self.detail = detail
        super().__init__(self.message)

    def body(self, tracking_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "error": self.error,
            "message": f"{self.message} (tracking id: {tracking_id})",
        }
        if self.status in (400, 422):
            body["fields"] = [f.to_json() for f in self.fields]
        return body


class ClientError(GatewayError):
    status = 400


class BadRequest(ClientError):
    status = 400
    error = "BadRequest"
    default_message = "The request is not valid."


class Unauthorized(ClientError):
    status = 401
    error = "Unauthorized"
    default_message = "The API key is missing or not valid."


class NotFound(ClientError):
    status = 404
    error = "NotFound"
    default_message = "No record exists with the given id."


class MethodNotAllowed(ClientError):
    status = 405
    error = "MethodNotAllowed"
    default_message = "This method is not allowed here."


class TooManyFailures(ClientError):
    status = 429
    error = "TooManyRequests"
    default_message = "Too many failed attempts. Please try again later."


class PayloadTooLarge(ClientError):
    status = 413
    error = "PayloadTooLarge"
    default_message = "The request body is too large."


class UnsupportedMediaType(ClientError):
    status = 415
    error = "UnsupportedMediaType"
    default_message = "The request body must be JSON (Content-Type: application/json)."


class CaseClosed(ClientError):
    """A repeat of a create whose case has been closed since: it is not changed or reopened
    (docs/behaviour.md §1.7)."""

    status = 409
    error = "CaseClosed"
    default_message = "The case this create made is closed; it is not changed or reopened."


class ValidationFailed(ClientError):
    status = 422
    error = "ValidationError"
    default_message = "The CRM did not accept some of the values."


class UpstreamError(GatewayError):
    """``not_applied``: the CRM cannot have applied the call, which never went out (no slot,
    no token, no connection, no budget left) or was refused with a 4xx; so a write that failed
    so is known not to have been made (docs/behaviour.md §1.4). Unmarked, a failed write may
    have been applied."""

    status = 502
    error = "UpstreamError"
    default_message = "The CRM could not be reached. Please try again."
    not_applied = False

    def unapplied(self) -> Self:
        """This error, marked: the call it ended was not applied."""
        self.not_applied = True
        return self


class BadGateway(UpstreamError):
    status = 502
    error = "BadGateway"
    default_message = "The CRM gave an unexpected answer. Please try again."


class AttemptFailed(BadGateway):
    """One attempt got no usable answer (a reset, a refused connection, a 2xx body that is not
    JSON, an answer over the size cap); the budget may allow another. ``cause`` names it for
    logs and metrics; ``repeatable`` is False when another attempt would fare no better."""

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: str | None = None,
        cause: str,
        repeatable: bool = True,
    ):
        super().__init__(message, detail=detail)
        self.cause = cause
        self.repeatable = repeatable


class MappingFailed(BadGateway):
    """A template or expression failed at run time. They are checked at load, so what is left
    is data of a shape the mapping does not expect: an upstream answer, not a bug of ours."""

    error = "MappingError"
    default_message = "The CRM gave an answer the gateway's mapping cannot read."


class UpdateConflict(BadGateway):
    """Handled inside the engine (an operation restarts); a 502 only if it keeps happening."""

    default_message = "The record kept changing while we updated it. Please try again."


class IdempotencyMismatch(BadGateway):
    """Handled inside the engine (the existing record is looked up)."""


class UpstreamUnavailable(UpstreamError):
    status = 503
    error = "ServiceUnavailable"
    default_message = "The CRM is busy. Please try again in a moment."

    @classmethod
    def rate_limited(cls, wait: float, *, detail: str) -> UpstreamUnavailable:
        """The CRM asked for a wait that the request's budget cannot hold: the caller is told
        to come back once it is over."""
        return cls(
            "The CRM asked us to slow down. Please try again in a moment.",
            headers={"Retry-After": retry_after(wait)},
            detail=detail,
        )


class CreatePending(UpstreamError):
    """An earlier create of the same values lost its answer, and the CRM may yet show what it
    made (its search lags): making it again could make it twice (docs/behaviour.md §1.4)."""

    status = 503
    error = "CreatePending"
    default_message = (
        "A create with these values may still be under way in the CRM. Please try again shortly."
    )

    @classmethod
    def until(cls, wait: float, *, detail: str) -> CreatePending:
        return cls(headers={"Retry-After": retry_after(wait)}, detail=detail)


class DeadlineExceeded(UpstreamError):
    status = 504
    error = "Timeout"
    default_message = "The CRM did not answer in time. Please try again."


class AttemptTimedOut(DeadlineExceeded):
    """One attempt got no answer within its timeout; the budget may allow another."""


def retry_after(seconds: float) -> str:
    """A `Retry-After` value: whole seconds, rounded up, at least one (no caller retries
    before the wait is over, nor at once)."""
    return str(max(1, math.ceil(seconds)))


def for_status(
    status: int, message: str | None = None, headers: dict[str, str] | None = None
) -> GatewayError:
    """The error of this tree for an HTTP status the web framework answered on its own (an
    unknown path, a method the path does not serve, a body over the limit), so that answer
    carries the same body as every other error."""
    if status >= 500:
        return GatewayError(headers=headers)
    known = (BadRequest, Unauthorized, NotFound, MethodNotAllowed, PayloadTooLarge,
             UnsupportedMediaType, TooManyFailures)  # fmt: skip
    for kind in known:
        if kind.status == status:
            return kind(message, headers=headers)
    error = BadRequest(message, headers=headers)
    error.status = status
    return error


@dataclass
class ConfigError(Exception):
    """An invalid config or mapping file: names the file, the line and the key."""

    file: str
    line: int | None
    key: str
    problem: str
    more: list[ConfigError] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(e.one_line() for e in [self, *self.more])

    def one_line(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key or '(top level)'}: {self.problem}"
