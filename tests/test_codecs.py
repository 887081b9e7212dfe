"""Value conversions and re-check matching."""

from __future__ import annotations

import pytest

from gateway.mapping.codecs import CODECS, MATCHES, digits


@pytest.mark.parametrize(
    "number",
    ["+41 79 123 45 67", "0041791234567", "41791234567", " 41 79 123 45 67", "+41-79-123-4567"],
)
def test_phone_forms_are_one_number(number: str) -> None:
    assert digits(number) == "41791234567"
    assert MATCHES["phone"]("+41791234567", number)


def test_phone_out_is_e164_when_international() -> None:
    out = CODECS["phone"][1]
    assert out("0041 79 123 45 67") == "+41791234567"
    assert out("+1 (555) 123-4567") == "+15551234567"
    with pytest.raises(ValueError):
        out("n/a")


def test_types_out() -> None:
    assert CODECS["boolean"][1]("true") is True and CODECS["boolean"][1](False) is False
    assert CODECS["integer"][1](" 42 ") == 42
    assert CODECS["decimal"][1]("4.5") == 4.5
    assert CODECS["date"][1]("2024-02-29") == "2024-02-29"
    for codec, bad in (
        ("integer", "4.5"),
        ("decimal", "nan"),
        ("date", "2024-02-30"),
        ("boolean", "maybe"),
        ("integer", True),
    ):
        with pytest.raises(ValueError):
            CODECS[codec][1](bad)


def test_types_in() -> None:
    assert CODECS["datetime"][0]("2017-08-07T16:09:00+02:00") == "2017-08-07T14:09:00Z"
    assert CODECS["integer"][0](7) == "7" and CODECS["string"][0](3.0) == "3"
    assert CODECS["handle"][0]("@JaneDoe") == "JaneDoe"


def test_matches() -> None:
    assert MATCHES["exact"]("Jane  Doe", "jane doe")
    assert not MATCHES["exact"]("jane.roe@example.com", "jane@example.com")
    assert MATCHES["words"]("Jane Doe", "ja do") and not MATCHES["words"]("Jane Doe", "john")
    assert MATCHES["handle"]("janedoe", "@JaneDoe")
    assert not MATCHES["phone"]("", "")
