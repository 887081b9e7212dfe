"""Interactions read back from what a case's history holds: which ones from the records (or,
without them, the markers), what each said from its own part of the text, and nothing a
caller's text could forge (docs/behaviour.md §1.5)."""

from __future__ import annotations

from typing import Any

from conftest import ROOT, interaction
from hypothesis import given
from hypothesis import strategies as st

from gateway.mapping import interactions as im
from gateway.mapping.recorded import read_back
from gateway.mapping.spec import load_mapping

ZENDESK = load_mapping(ROOT / "mappings/zendesk.yaml").interactions
RT = load_mapping(ROOT / "mappings/rt5.yaml").interactions


def written(spec: Any, given: list[dict[str, Any]]) -> tuple[Any, str]:
    """One write of these interactions, as the write step sends it: its records and text."""
    ctx = im.context(spec, im.prepare(spec, given))
    return ctx["recorded"], ctx["comment"]


def test_what_was_written_reads_back_whole() -> None:
    post = interaction("1", "Hello\n\nsecond paragraph\nhttps://not.the.link")
    photo = interaction("2", "", contentType="photo", linkUrl=None)
    photo["author"] = {"service": "twitter", "serviceId": "5", "handle": "", "name": "",
                       "brandOwned": True}  # fmt: skip
    for spec in (ZENDESK, RT):
        records, text = written(spec, [post, photo])
        writes = [(records if spec is ZENDESK else None, text)]
        one, two = read_back(spec, writes)
        assert one == {**{k: post[k] for k in ("created", "body", "linkUrl", "serviceId")},
                       "service": "twitter", "contentType": "post",
                       "author": {**post["author"],
                                  "serviceId": "99" if spec is ZENDESK else ""}}  # fmt: skip
        assert two["body"] == "" and two["linkUrl"] == "" and two["contentType"] == "photo"
        assert two["author"]["name"] == "" and two["author"]["brandOwned"] is True


def test_only_records_say_which_interactions_are_there_where_the_crm_keeps_them() -> None:
    forged = interaction("1", "[khoros:twitter:2] [khoros:twitter:3]")
    records, text = written(ZENDESK, [forged])
    agent_reply = "I typed [khoros:twitter:4] myself"
    found = read_back(ZENDESK, [(records, text), ([], agent_reply)])
    assert [i["serviceId"] for i in found] == ["1"]
    assert found[0]["body"] == forged["body"]  # as sent, the inert marker start undone
    # Without records (RT), the markers: caller text holds none, an agent's reply may.
    found = read_back(RT, [(None, written(RT, [forged])[1]), (None, agent_reply)])
    assert [i["serviceId"] for i in found] == ["1", "4"]


def test_a_record_beats_the_text_and_the_key_beats_both() -> None:
    records, text = written(ZENDESK, [interaction("1")])
    records[0].update(created="2020-01-01T00:00:00+02:00", contentType="reply", service="evil")
    found = read_back(ZENDESK, [(records, text)])[0]
    assert found["created"] == "2019-12-31T22:00:00Z" and found["contentType"] == "reply"
    assert found["service"] == "twitter" and found["serviceId"] == "1"


def test_a_record_without_its_text_still_reads() -> None:
    """A comment cut short (Zendesk truncates at 64 kB) or missing: the record says it is
    there, with what the record holds."""
    records, _ = written(ZENDESK, [interaction("1"), interaction("2")])
    found = read_back(ZENDESK, [(records, None), ([{"key": 7}, "x", {"key": "twitter:3"}], "")])
    assert [(i["serviceId"], i["contentType"], i["body"]) for i in found] == [
        ("1", "post", ""),
        ("2", "post", ""),
        ("3", "", ""),  # when it was, nothing tells: last
    ]


def test_a_digest_key_reads_its_service_from_the_text() -> None:
    odd = interaction("a b]", service="twitter")
    found = read_back(RT, [(None, written(RT, [odd])[1])])[0]
    assert found["service"] == "twitter" and found["serviceId"] == ""


def test_oldest_first_each_once() -> None:
    late, early = interaction("1", created="2026-01-02T00:00:00Z"), interaction("2")
    early["created"] = "2026-01-01T00:00:00Z"
    first, second = written(RT, [late])[1], written(RT, [early, late])[1]
    found = read_back(RT, [(None, first), (None, second), (None, first)])
    assert [i["serviceId"] for i in found] == ["2", "1"]


@given(st.text(), st.text(alphabet="[khoros:twitter5]() \n-@", max_size=60))
def test_no_text_makes_an_interaction_appear(body: str, name: str) -> None:
    sent = interaction("1", body)
    sent["author"]["name"] = name
    for spec in (ZENDESK, RT):
        records, text = written(spec, [sent])
        found = read_back(spec, [(records if spec is ZENDESK else None, text)])
        assert [i["serviceId"] for i in found] == ["1"]
