"""Error translation, in one place: an upstream error answer becomes the gateway error the
caller sees (docs/behaviour.md §4), with validation details under the caller's field names.

Only a write's 400/422 is about the caller's values (422, by field) and only a write's 409 a
conflict; the same answer to a read is the CRM refusing the gateway's own request, a 502 whose
detail goes to the log and whose CRM text is never shown to the agent."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from gateway import logs
from gateway.errors import (
    BadGateway,
    FieldError,
    GatewayError,
    IdempotencyMismatch,
    NotFound,
    UpdateConflict,
    UpstreamError,
    UpstreamUnavailable,
    ValidationFailed,
)
from gateway.exchange import Response
from gateway.mapping.model import ErrorSpec, FieldSpec

READS = frozenset({"GET", "HEAD"})  # requests that send no values of the caller's to write


def translate(
    spec: ErrorSpec,
    resp: Response,
    method: str,
    route: str,
    not_found: str | None,
    fields: Iterable[FieldSpec],
) -> GatewayError:
    """``method`` and ``route`` (the path template) are the request's; ``not_found`` names
    what a 404 means on it; ``fields`` are the fields of the object the request was about.
    A 4xx is the CRM refusing the call: what a write asked for was not applied."""
    error = _translated(spec, resp, method, route, not_found, fields)
    if isinstance(error, UpstreamError) and _refused(resp.status):
        error.unapplied()
    return error


def _refused(status: int) -> bool:
    """A 4xx, but for those a proxy may answer after it passed the call on (408 Request
    Timeout; nginx's 499, the client closed the connection first)."""
    return 400 <= status < 500 and status not in (408, 499)


def _translated(
    spec: ErrorSpec,
    resp: Response,
    method: str,
    route: str,
    not_found: str | None,
    fields: Iterable[FieldSpec],
) -> GatewayError:
    where = f"{method} {route}"
    payload = resp.data if resp.data is not None else {}
    upstream_type = _text(spec.type(payload)) if spec.type else None
    detail = f"{where} -> {resp.status} {upstream_type or ''}".rstrip()
    if resp.status == 404 and not_found:
        return NotFound(f"No {not_found} exists with the given id.", detail=detail)
    if resp.status in (401, 403):
        logs.get().error(
            "upstream_refused_credentials",
            status=resp.status,
            request=where,
            upstream_error=upstream_type,
            action="check the upstream credentials and their scopes",
        )
        return BadGateway("The CRM refused the gateway's credentials.", detail=detail)
    if resp.status == 429:
        retry = resp.headers.get("Retry-After")
        return UpstreamUnavailable(headers={"Retry-After": retry} if retry else {}, detail=detail)
    if resp.status in (400, 409, 422) and method.upper() in READS:
        message = _text(spec.message(payload)) if spec.message else None
        said = f": {message[:200]}" if message else ""
        return BadGateway("The CRM refused the gateway's request.", detail=detail + said)
    if resp.status == 409:
        return UpdateConflict(detail=detail)
    if spec.idempotency_mismatch and upstream_type == spec.idempotency_mismatch:
        return IdempotencyMismatch(detail=detail)
    if resp.status in (400, 422):
        named, loose = field_errors(spec, payload, fields)
        if spec.messages is not None:
            more_named, more_loose = attribute(_messages(spec.messages(payload)), fields)
            named, loose = named + more_named, loose + more_loose
        message = _text(spec.message(payload)) if spec.message else None
        if named or loose or resp.status == 422:
            text = "The CRM did not accept the values."
            if loose:
                text += " " + " ".join(loose)
            elif not named and message:
                text += f" {message}"
            return ValidationFailed(text, fields=named, detail=detail)
    return BadGateway(detail=detail)


def field_errors(
    spec: ErrorSpec, payload: Any, fields: Iterable[FieldSpec]
) -> tuple[list[FieldError], list[str]]:
    """Upstream validation details under the caller's field names; the rest as text."""
    details = spec.fields(payload) if spec.fields else None
    if not isinstance(details, Mapping):
        return [], []
    by_key: dict[str, str] = {}
    for f in fields:
        for k in f.error_keys:
            by_key.setdefault(k, f.name)
    named, loose = [], []
    for key, entries in details.items():
        for entry in entries if isinstance(entries, list) else [entries]:
            message: Any = entry
            named_key: Any = None
            if isinstance(entry, Mapping):
                message = spec.field_message(entry) if spec.field_message else None
                named_key = spec.field_key(entry) if spec.field_key else None
            text = str(message or "is not valid")
            name = by_key.get(str(named_key)) if named_key is not None else None
            name = name or by_key.get(str(key))
            if name:
                named.append(FieldError(name, text))
            else:
                loose.append(text)
    return named, loose


def attribute(
    messages: Iterable[str], fields: Iterable[FieldSpec]
) -> tuple[list[FieldError], list[str]]:
    """Plain messages, each under the first field whose `error_match` it matches."""
    patterned = [f for f in fields if f.error_match is not None]
    named, loose = [], []
    for text in messages:
        f = next((f for f in patterned if f.error_match and f.error_match.search(text)), None)
        if f is not None:
            named.append(FieldError(f.name, text))
        else:
            loose.append(text)
    return named, loose


def failed_answer(
    messages: Any, failed: re.Pattern[str], fields: Iterable[FieldSpec], where: str
) -> ValidationFailed | None:
    """A 2xx answer whose messages report failures (some CRMs answer 200 to a bad value)."""
    bad = [m for m in _messages(messages) if failed.search(m)]
    if not bad:
        return None
    named, loose = attribute(bad, fields)
    text = "The CRM did not accept the values." + ("".join(f" {m}" for m in loose))
    return ValidationFailed(text, fields=named, detail=f"{where} -> 2xx with failures")


def _messages(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [m for m in items if isinstance(m, str) and m]


def _text(value: Any) -> str | None:
    """An upstream value as text for logs and messages: strings only, never whole objects."""
    return value if isinstance(value, str) and value else None
