"""The searches one best match makes: bounded per strategy and in total, best strategy first,
and no strategy crowded out (docs/behaviour.md §1.6)."""

from __future__ import annotations

from typing import Any

from conftest import DEFAULT_FAN_OUT
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mapping.expr import Expression
from gateway.mapping.fanout import FanOutLimits, plan
from gateway.mapping.model import Strategy

STRATEGIES = (
    Strategy("customers", "email", Expression("[body.email]"), "exact"),
    Strategy("customers", "phone", Expression("body.phoneNumbers"), "phone"),
    Strategy("customers", "twitter", Expression("[body.screenName]"), "handle"),
    Strategy("customers", "name", Expression("[body.displayName]"), "exact"),
)


def searched(body: dict[str, Any], limits: FanOutLimits) -> tuple[list[tuple[str, str]], int]:
    found, ignored = plan(STRATEGIES, {"body": body}, limits)
    return [(s.name, v) for s, v in found], ignored


def test_values_per_strategy_and_the_rest_counted() -> None:
    body = {"email": "a@b.c", "phoneNumbers": [str(n) * 7 for n in range(1, 10)]}
    found, ignored = searched(body, FanOutLimits(values_per_strategy=3, max_searches=12))
    assert found == [("email", "a@b.c"), ("phone", "1111111"), ("phone", "2222222"),
                     ("phone", "3333333")]  # fmt: skip
    assert ignored == 6


def test_the_total_is_taken_in_rounds_so_no_strategy_is_crowded_out() -> None:
    body = {"phoneNumbers": [f"+41 79 {n}" for n in range(100)], "displayName": "Jane Doe",
            "email": "jane@example.com", "screenName": "@jane"}  # fmt: skip
    found, ignored = searched(body, FanOutLimits(values_per_strategy=5, max_searches=6))
    assert found == [
        ("email", "jane@example.com"),
        ("phone", "+41 79 0"),
        ("phone", "+41 79 1"),
        ("phone", "+41 79 2"),
        ("twitter", "@jane"),
        ("name", "Jane Doe"),
    ]
    assert ignored == 97


def test_blank_repeated_and_non_text_values_are_not_searched() -> None:
    body = {"phoneNumbers": ["", "  ", "123456", "123456", None, True, {"a": 1}, 4179123, "x"]}
    found, ignored = searched(body, DEFAULT_FAN_OUT)
    assert found == [("phone", "123456"), ("phone", "4179123"), ("phone", "x")]
    assert ignored == 0


def test_an_expression_that_finds_one_value_or_none() -> None:
    one = (Strategy("customers", "email", Expression("body.email")),)
    assert plan(one, {"body": {"email": "a@b.c"}}, DEFAULT_FAN_OUT)[0][0][1] == "a@b.c"
    assert plan(one, {"body": {}}, DEFAULT_FAN_OUT) == ([], 0)


def test_handles_are_values_by_network() -> None:
    by_network = (
        Strategy("customers", "twitter", Expression("handles.twitter")),
        Strategy("customers", "instagram", Expression("handles.instagram")),
        Strategy("case", None, Expression("body.caseNumbers")),
    )
    given = {"body": {"caseNumbers": ["5001"]}, "handles": {"instagram": ["jane.roe"]}}
    found, ignored = plan(by_network, given, DEFAULT_FAN_OUT)
    assert [(s.name, v) for s, v in found] == [("instagram", "jane.roe"), ("case", "5001")]
    assert ignored == 0  # no twitter handle: no value


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["email", "phoneNumbers", "screenName", "displayName"]),
        st.text() | st.lists(st.text() | st.integers(), max_size=60),
    ),
    st.integers(1, 10),
    st.integers(1, 30),
)
def test_never_more_than_the_limits(body: dict[str, Any], per: int, total: int) -> None:
    found, ignored = searched(body, FanOutLimits(values_per_strategy=per, max_searches=total))
    assert len(found) <= total
    for field in ("email", "phone", "twitter", "name"):
        assert sum(f == field for f, _ in found) <= per
    order = [f for f, _ in found]
    assert order == sorted(order, key=["email", "phone", "twitter", "name"].index)
    assert len(set(found)) == len(found) and ignored >= 0
