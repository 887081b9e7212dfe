"""Value conversions and re-check matching."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mapping.codecs import CODECS, MATCHES, Codecs, Malformed, Phone, PhoneNumbers, digits


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


SWISS = ["0791234567", "079 123 45 67", "+41 79 123 45 67", "0041791234567", "41791234567"]


@pytest.mark.parametrize("number", SWISS)
def test_with_a_default_region_national_and_international_forms_are_one(number: str) -> None:
    ch = PhoneNumbers("CH")
    assert ch.e164(number) == "+41791234567"
    assert ch.same("+41791234567", number) and ch.same(number, "+41 79 123 45 67")


def test_without_a_default_region_a_national_number_is_no_number() -> None:
    plain = PhoneNumbers()
    for national in ("0791234567", "079 123 45 67"):
        assert plain.read(national) is None
        assert not plain.same("+41791234567", national)
        with pytest.raises(Malformed, match="country code"):
            plain.out(national)
    # International forms need no region: +, the 00 prefix, and digits that are a valid number.
    assert {plain.e164(n) for n in SWISS[2:]} == {"+41791234567"}


def test_the_region_reads_as_dialled_there() -> None:
    # In the US the international prefix is 011, not 00; national numbers have no trunk 0.
    us = PhoneNumbers("US")
    assert us.e164("011 41 79 123 45 67") == "+41791234567"
    assert us.e164("(415) 555-0132") == "+14155550132"
    assert us.e164("0041791234567") == "+41791234567"  # 00: the ITU prefix, still understood
    # A valid national reading wins over the guess of an international number without its +.
    assert PhoneNumbers("DE").e164("41791234567") == "+4941791234567"


def test_an_extension_is_kept_apart_and_never_changes_matching() -> None:
    plain = PhoneNumbers()
    for written in ("+1 (555) 000-1111 ext 5", "+1 555 000 1111 x5", "+15550001111;ext=5"):
        assert plain.read(written) == Phone("+15550001111", "5")
        assert plain.out(written) == "+15550001111"
        assert plain.same("+15550001111", written) and plain.same(written, "+1 555 000 1111")
    assert plain.read("+15550001111") == Phone("+15550001111", None)
    assert PhoneNumbers("CH").read("079 123 45 67 ext. 12") == Phone("+41791234567", "12")


@pytest.mark.parametrize(
    "not_a_number", ["", "n/a", "1111", "12", "+999 123", "+41 79", "+41 79 123 45 67 89 01 23"]
)
def test_what_is_no_number_matches_nothing_and_cannot_be_written(not_a_number: str) -> None:
    for phones in (PhoneNumbers(), PhoneNumbers("CH")):
        assert phones.read(not_a_number) is None
        assert not phones.same(not_a_number, not_a_number)
        with pytest.raises(Malformed):
            phones.out(not_a_number)


def test_a_guessed_international_number_must_be_valid() -> None:
    # +1 555 numbers are fictional: accepted with a + (a possible length) but never guessed.
    plain = PhoneNumbers()
    assert plain.e164("+1 555 123 4567") == "+15551234567"
    assert plain.e164("15551234567") is None
    assert plain.e164("41791234567") == "+41791234567"


def test_codecs_bind_the_phone_codec_and_matcher_to_the_region() -> None:
    ch = Codecs(PhoneNumbers("CH"))
    assert ch.to_upstream("phone", "079 123 45 67") == "+41791234567"
    assert ch.match("phone")("+41791234567", "0791234567")
    assert not Codecs().match("phone")("+41791234567", "0791234567")
    assert ch.to_upstream("integer", " 7 ") == 7 and ch.match("exact")("A", "a")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30), st.sampled_from([None, "CH", "US", "DE"]))
def test_any_text_is_a_number_or_none_never_an_error(text: str, region: str | None) -> None:
    phones = PhoneNumbers(region)
    found = phones.read(text)
    if found is None:
        with pytest.raises(Malformed):
            phones.out(text)
    else:
        assert found.number.startswith("+") and found.number[1:].isdigit()
        assert phones.e164(found.number) == found.number  # E.164 reads as itself
        assert phones.same(text, found.number)
