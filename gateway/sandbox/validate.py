"""Zendesk's validation of user and ticket writes, checked before anything is stored: a write
Zendesk refuses changes nothing (docs/behaviour.md §3, docs/sandbox.md)."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from typing import Any

from gateway.sandbox.rules import custom_value_problem, invalid

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("urgent", "high", "normal", "low")
TYPES = ("problem", "incident", "question", "task")
METADATA_BYTES = 1024  # "up to 1 kilobyte of custom metadata" on each audit
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Details = dict[str, list[dict[str, Any]]]


def _problem(description: str, error: str, **more: Any) -> dict[str, Any]:
    return {"description": description, "error": error, **more}


def _custom(
    specs: Iterable[dict[str, Any]],
    values: Iterable[tuple[Any, Any]],
    details: Details,
    key_of: str,
) -> None:
    by_key = {f[key_of]: f for f in specs}
    for key, value in values:
        spec = by_key.get(key)
        if spec is None:
            continue  # Zendesk ignores unknown keys
        problem = custom_value_problem(spec, value)
        if problem:
            details.setdefault("base", []).append(
                _problem(f"{spec['title']}: {problem}", "InvalidValue", field_key=key)
            )


def identity_taken(
    identities: Iterable[dict[str, Any]], kind: str, value: Any, user_id: int | None
) -> bool:
    """Emails and social handles belong to one user."""
    return kind in ("email", "twitter", "facebook") and any(
        i["type"] == kind
        and str(i["value"]).casefold() == str(value).casefold()
        and i["user_id"] != user_id
        for i in identities
    )


def check_user(
    data: dict[str, Any],
    current: dict[str, Any] | None,
    identities: list[dict[str, Any]],
    user_fields: list[dict[str, Any]],
) -> None:
    details: Details = {}
    name = data.get("name", current["name"] if current else None)
    if not name or not str(name).strip():
        details["name"] = [_problem("Name: cannot be blank", "BlankValue")]
    email = data.get("email")
    me = current["id"] if current else None
    if email is not None and not _EMAIL.match(str(email)):
        details["email"] = [_problem(f"Email: {email} is not properly formatted", "InvalidFormat")]
    elif email and identity_taken(identities, "email", email, me):
        details["email"] = [
            _problem(f"Email: {email} is already being used by another user", "DuplicateValue")
        ]
    for ident in data.get("identities") or []:
        # Checked with the user, so a refused identity leaves no user behind.
        if identity_taken(identities, str(ident.get("type")), ident.get("value"), me):
            details.setdefault("value", []).append(
                _problem(
                    f"Value: {ident.get('value')} is already being used by another user",
                    "DuplicateValue",
                )
            )
    _custom(user_fields, (data.get("user_fields") or {}).items(), details, "key")
    if details:
        raise invalid(details)


def check_ticket(
    data: dict[str, Any],
    current: dict[str, Any] | None,
    users: Collection[int],
    ticket_fields: list[dict[str, Any]],
) -> None:
    details: Details = {}
    if current and current["status"] == "closed":
        closed = _problem("Status: closed prevents ticket update", "InvalidValue")
        raise invalid({"status": [closed]})
    for key, allowed in (("status", STATUSES), ("priority", PRIORITIES), ("type", TYPES)):
        if data.get(key) is not None and data[key] not in allowed:
            details[key] = [_problem(f"{key.title()}: {data[key]} is not valid", "InvalidValue")]
    if (current is None or "requester_id" in data) and data.get("requester_id") not in users:
        details["requester"] = [_problem("Requester: cannot be blank", "BlankValue")]
    if current is None:
        comment = data.get("comment") or {}
        if not str(comment.get("body") or comment.get("html_body") or "").strip():
            details["base"] = [_problem("Comment: cannot be blank", "BlankValue")]
    metadata = data.get("metadata")
    if metadata is not None and (
        not isinstance(metadata, dict) or len(json.dumps(metadata).encode()) > METADATA_BYTES
    ):
        # Zendesk documents the 1 KB; what it does past it is not documented: refused here.
        details.setdefault("base", []).append(
            _problem(f"Metadata: must be an object of at most {METADATA_BYTES} bytes", "TooLong")
        )
    entries = ((e.get("id"), e.get("value")) for e in data.get("custom_fields") or [])
    _custom(ticket_fields, entries, details, "id")
    if details:
        raise invalid(details)
