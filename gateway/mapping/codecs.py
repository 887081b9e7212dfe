"""Value conversions between the caller's form and the upstream's, and how values are compared
when search results are re-checked. Pure functions: data in, data out; the phone codec and
matcher read numbers under the configured default region (`Codecs`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import phonenumbers


class Malformed(ValueError):
    """A value that cannot be read as its field's kind of value at all: the request is
    malformed (400), not merely a value the field does not accept (422)."""


def digits(value: Any) -> str:
    """The digits of a phone number, with an international ``00`` prefix read as ``+``."""
    text = str(value or "").strip()
    only = re.sub(r"\D", "", text)
    return only[2:] if only.startswith("00") and not text.startswith("+") else only


@dataclass(frozen=True)
class Phone:
    number: str  # E.164: what is stored, searched and compared
    extension: str | None  # kept apart, never part of the number


def _parsed(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def _possible(number: phonenumbers.PhoneNumber) -> bool:
    reason = phonenumbers.is_possible_number_with_reason(number)
    return bool(reason == phonenumbers.ValidationResult.IS_POSSIBLE)


class PhoneNumbers:
    """Phone numbers as the world writes them, read with Google's libphonenumber under one
    default region (docs/behaviour.md §2.2). The readings of a number, in this order:

    - ``+41 79 123 45 67``: international, as written (and the only reading of a ``+``);
    - with a default region, as dialled there: ``079 123 45 67``, or in CH ``0041 79 ...``;
    - ``0041 79 ...``: ``00`` is the international prefix ITU-T recommends, read as ``+``;
    - ``41791234567``: an international number without its ``+``, as WhatsApp and many phone
      systems pass caller ids. A guess, so taken only when it is a valid number.

    The first valid reading wins, else the first of a possible length for its country: the
    library's validity data rejects fictional ranges such as +1 555 and lags new ones."""

    def __init__(self, region: str | None = None) -> None:
        self.region = region

    def read(self, value: Any) -> Phone | None:
        text = str(value if value is not None else "").strip()
        if not any(c.isdigit() for c in text):
            return None
        readings: list[tuple[str, str | None, bool]] = []  # (text, region, a guess)
        if text.startswith("+"):
            readings.append((text, None, False))
        else:
            if self.region:
                readings.append((text, self.region, False))
            if text.startswith("00"):
                readings.append(("+" + text[2:], None, False))
            else:
                readings.append(("+" + text, None, True))
        found = [(n, guess) for n, guess in ((_parsed(t, r), g) for t, r, g in readings) if n]
        best = next((n for n, _ in found if phonenumbers.is_valid_number(n)), None)
        if best is None:
            best = next((n for n, guess in found if not guess and _possible(n)), None)
        if best is None:
            return None
        e164 = phonenumbers.format_number(best, phonenumbers.PhoneNumberFormat.E164)
        return Phone(e164, best.extension or None)

    def e164(self, value: Any) -> str | None:
        found = self.read(value)
        return found.number if found else None

    def same(self, record: Any, query: Any) -> bool:
        """One number, extensions aside; a value that is no number matches nothing."""
        wanted = self.e164(query)
        return wanted is not None and self.e164(record) == wanted

    def out(self, value: Any) -> str:
        """The number in E.164, for writes; its extension is `read(value).extension`."""
        found = self.read(value)
        if found is None:
            unset = "" if self.region else " (no default region is configured)"
            raise Malformed(f"is not a phone number: give it with its country code{unset}")
        return found.number


_NO_REGION = PhoneNumbers()


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
    "phone": (_text, _NO_REGION.out),  # without a default region; see Codecs
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
    "phone": _NO_REGION.same,
    "handle": lambda record, query: _norm(_handle(record)) == _norm(_handle(query)),
}


@dataclass(frozen=True)
class Codecs:
    """The codecs and matchers as configured: phone numbers under the default region."""

    phones: PhoneNumbers = field(default_factory=PhoneNumbers)

    def to_upstream(self, codec: str, value: Any) -> Any:
        return self.phones.out(value) if codec == "phone" else CODECS[codec][1](value)

    def match(self, name: str) -> Callable[[Any, Any], bool]:
        return self.phones.same if name == "phone" else MATCHES[name]
