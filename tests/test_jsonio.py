"""JSON out: what orjson writes, and what it refuses written all the same (test_text.py shows
it for any value)."""

from __future__ import annotations

import json
from datetime import date

from gateway import jsonio
from gateway.config import Secret


def test_what_json_cannot_carry_is_written_as_its_text() -> None:
    out = json.loads(jsonio.dumps({"when": date(2026, 1, 2), "key": Secret("s3cret")}))
    assert out == {"when": "2026-01-02", "key": "Secret('**********')"}


def test_what_orjson_refuses_is_still_written() -> None:
    out = jsonio.dumps({"text": "x\ud800y", "big": 2**70, "deep": [[[]]]})
    assert json.loads(out) == {"text": "x\ufffdy", "big": 2**70, "deep": [[[]]]}


def test_a_response_is_json_with_its_status_and_headers() -> None:
    resp = jsonio.response({"a": "é"}, status=201, headers={"X-Request-Id": "r"})
    assert resp.status == 201 and resp.content_type == "application/json"
    assert resp.headers["X-Request-Id"] == "r" and json.loads(resp.text or "") == {"a": "é"}
