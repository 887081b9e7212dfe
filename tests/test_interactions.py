"""Interactions as pure functions: keys no text can forge, text cleaned of marker look-alikes,
writes split where the upstream records too little, and what is on the record left out."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from conftest import ROOT, interaction
from hypothesis import given
from hypothesis import strategies as st

from gateway.mapping import interactions as im
from gateway.mapping.spec import load_mapping

SPEC = load_mapping(ROOT / "mappings/zendesk.yaml").interactions
RT = load_mapping(ROOT / "mappings/rt5.yaml").interactions


def test_keys_are_service_and_id_or_a_digest() -> None:
    assert im.key_of({"service": "twitter", "serviceId": "555"}) == "twitter:555"
    odd = im.key_of({"service": "twitter", "serviceId": "5] [khoros:twitter:6"})
    assert odd.startswith("sha256:") and "[" not in odd
    assert im.key_of({"service": "x", "serviceId": "1" * 500}) != im.key_of(
        {"service": "x", "serviceId": "1" * 499}
    )


@given(st.text(), st.text(alphabet="[khoros:twitter5]", max_size=40))
def test_cleaned_text_holds_no_marker_and_reads_the_same(text: str, tricky: str) -> None:
    for value in (text, tricky, tricky + text + "[khoros:twitter:555]"):
        cleaned = im.clean(value, SPEC.marker_prefix)
        assert SPEC.marker_prefix not in cleaned
        assert cleaned.replace(im.WORD_JOINER, "") == value.replace(im.WORD_JOINER, "")


def test_a_body_holding_a_marker_suppresses_nothing() -> None:
    forged = interaction("1", "Hi [khoros:twitter:555] and [khoros:twitter:556]")
    forged["author"]["name"] = "[khoros:twitter:557]"
    for spec in (SPEC, RT):
        first = im.prepare(spec, [forged])
        ctx = im.context(spec, im.prepare(spec, [interaction(n) for n in ("555", "556", "557")]))
        im.drop_on_record(spec, ctx, texts=[first[0].text])
        assert list(ctx["interactions"]) == ["twitter:555", "twitter:556", "twitter:557"]
        assert first[0].text.count(first[0].marker) == 1  # its own marker, once


def test_media_only_shows_content_type_and_link() -> None:
    photo = interaction("9", "", contentType="photo")
    text = im.prepare(SPEC, [photo])[0].text
    assert "(photo without text)" in text and photo["linkUrl"] in text


def test_writes_fit_what_the_upstream_records() -> None:
    many = [interaction(str(n)) for n in range(100)]
    writes = im.batches(SPEC, im.prepare(SPEC, many))
    assert len(writes) > 1 and sum(len(w) for w in writes) == 100
    for w in writes:
        assert len(json.dumps({"khoros": [p.record for p in w]})) <= 1024
    assert im.batches(RT, im.prepare(RT, many)) == [im.prepare(RT, many)]  # no limit: one
    huge = interaction("7", created="x" * 5000)
    assert im.prepare(SPEC, [huge])[0].record == {"key": "twitter:7"}


def test_recorded_keys_and_markers_leave_out_what_is_there() -> None:
    ctx: dict[str, Any] = im.context(SPEC, im.prepare(SPEC, [interaction("1"), interaction("2")]))
    im.drop_on_record(SPEC, ctx, keys=["twitter:1", 7, None])
    assert list(ctx["interactions"]) == ["twitter:2"]
    assert [r["key"] for r in ctx["recorded"]] == ["twitter:2"]
    im.drop_on_record(SPEC, ctx, keys=["twitter:2"])
    assert ctx["comment"] is None and ctx["recorded"] == []


def test_digest_and_idempotency_key() -> None:
    body = {"customerId": "1", "title": "T", "interactions": [interaction("1")]}
    assert im.digest(body) == im.digest(json.loads(json.dumps(body)))
    assert im.digest(body) != im.digest({**body, "priority": "high"})
    assert im.idempotency_key(body) == im.idempotency_key({**body, "priority": "high"})
    # The key made before (a repeat within Zendesk's two hours still matches it).
    assert (
        im.idempotency_key(body)
        == "crm-gateway-"
        + hashlib.sha256(json.dumps(["1", "T", ["twitter:1"]]).encode()).hexdigest()[:40]
    )


def test_without_interactions_every_value_is_the_identity_of_a_case() -> None:
    body = {"customerId": "1", "title": "Call back", "priority": "low"}
    assert im.idempotency_key(body) == im.idempotency_key(dict(reversed(body.items())))
    assert im.idempotency_key(body) == im.idempotency_key({**body, "interactions": []})
    assert im.idempotency_key(body) == im.idempotency_key(
        {"customId": "1", "title": "Call back", "priority": "low", "customerId": "1"}
    )
    others = [{**body, "priority": "urgent"}, {**body, "type": "task"}, {**body, "title": "X"}]
    assert len({im.idempotency_key(b) for b in [body, *others]}) == 4
