"""The typed model of a mapping: what a field answers to in the CRM's validation errors."""

from __future__ import annotations

from gateway.mapping.expr import Path
from gateway.mapping.model import FieldSpec, ListWrite


def test_a_field_answers_to_its_name_its_error_key_and_where_it_writes() -> None:
    plain = FieldSpec("email", "Email", Path("email"), write="user.email")
    assert plain.error_keys == {"email"}
    renamed = FieldSpec("vip", "VIP", Path("x"), write="user.user_fields.vip_level", error_key="7")
    assert renamed.error_keys == {"vip", "7", "vip_level"}
    listed = FieldSpec("custom_7", "Seven", Path("x"), write=ListWrite("custom_fields", {"id": 7}))
    assert listed.error_keys == {"custom_7"}
