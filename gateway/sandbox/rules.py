"""Zendesk's rules the sandbox enforces: its error envelopes and custom field values
(docs/behaviour.md §3)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any


class ZendeskError(Exception):
    """An error answer: Zendesk's JSON envelope, or (``text``) the plain text some 429s are."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        text: str | None = None,
    ):
        self.status, self.body, self.headers, self.text = status, body, headers or {}, text


def not_found() -> ZendeskError:
    return ZendeskError(404, {"error": "RecordNotFound", "description": "Not found"})


def invalid(details: dict[str, list[dict[str, Any]]]) -> ZendeskError:
    return ZendeskError(
        422,
        {"error": "RecordInvalid", "description": "Record validation errors", "details": details},
    )


def now() -> str:
    """Zendesk's timestamps: whole seconds, so two writes inside one second share one (and
    safe_update lets both through, as Zendesk does)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def custom_value_problem(spec: dict[str, Any], value: Any) -> str | None:
    if value is None or value == "":
        return None
    kind = spec["type"]
    if kind in ("dropdown", "tagger"):
        options = [o["value"] for o in spec.get("custom_field_options") or []]
        return None if value in options else f"{value} is not a valid option"
    if kind == "checkbox":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "integer":
        return (
            None
            if isinstance(value, int) or re.fullmatch(r"-?\d+", str(value))
            else "is not a number"
        )
    if kind == "decimal":
        return None if re.fullmatch(r"-?\d+(\.\d+)?", str(value)) else "is not a number"
    if kind == "date":
        try:
            date.fromisoformat(str(value))
        except ValueError:
            return "is not a date"
    if kind == "regexp" and spec.get("regexp_for_validation"):
        return None if re.fullmatch(spec["regexp_for_validation"], str(value)) else "is invalid"
    return None


def stored(value: Any) -> Any:
    # Zendesk stores numbers of integer/decimal fields as strings.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
