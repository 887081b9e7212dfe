"""Value conversions between the caller's form and the upstream's, and how values are compared
when search results are re-checked. Pure functions: data in, data out."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any


def digits(value: Any) -> str:
    """The digits of a phone number, with an international ``00`` prefix read as ``+``."""
    text = str(value or "").strip()
    only = re.sub(r"\D", "", text)
    return only[2:] if only.startswith("00") and not text.startswith("+") else only


def _phone_out(value: Any) -> str:
    text = str(value).strip()
    only = digits(text)
    if len(only) < 3:
        raise ValueError("is not a phone number")
    # E.164 (what CRMs store); a number without a country prefix keeps its local digits.
    international = text.startswith(("+", "00")) or text[:1].isspace()
    return f"+{only}" if international else only


def _bool_in(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _int_out(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("must be a whole number") from None


def _decimal_out(value: Any) -> float:
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("must be a number") from None
    if not number.is_finite():
        raise ValueError("must be a number")
    return float(number)


def _date_out(value: Any) -> str:
    try:
        return date.fromisoformat(str(value).strip()[:10]).isoformat()
    except ValueError:
        raise ValueError("must be a date (YYYY-MM-DD)") from None


def _datetime_in(value: Any) -> str:
    """Any ISO-8601 timestamp as UTC with a ``Z``, to the second."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _handle(value: Any) -> str:
    return str(value).strip().lstrip("@")


# codec name -> (upstream value to caller's value, caller's value to upstream value)
CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "string": (_text, _text),
    "integer": (_text, _int_out),
    "decimal": (_text, _decimal_out),
    "boolean": (_bool_in, _bool_in),
    "date": (lambda v: str(v)[:10], _date_out),
    "datetime": (_datetime_in, _text),
    "phone": (_text, _phone_out),
    "handle": (_handle, _handle),
}


def _norm(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


def _words(record: Any, query: Any) -> bool:
    have = _norm(record).split()
    return all(any(word.startswith(q) for word in have) for q in _norm(query).split())


# match name -> does the record's value satisfy the searched value?
MATCHES: dict[str, Callable[[Any, Any], bool]] = {
    "exact": lambda record, query: _norm(record) == _norm(query),
    "words": _words,
    "phone": lambda record, query: bool(digits(query)) and digits(record) == digits(query),
    "handle": lambda record, query: _norm(_handle(record)) == _norm(_handle(query)),
}
