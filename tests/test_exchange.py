"""What passes between the engine and the upstream client: an answer, and whether it is one."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest
from conftest import answer


def test_an_answer_is_ok_for_2xx_only() -> None:
    assert [answer(s).ok for s in (199, 200, 204, 299, 300, 404, 500)] == [
        False,
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_an_answer_cannot_change_on_its_way() -> None:
    got = answer(200, {"a": 1}, Retry_After="3")
    assert got.headers["retry-after"] == "3" and got.text == '{"a": 1}'
    with pytest.raises(FrozenInstanceError):
        got.status = 500  # type: ignore[misc]
