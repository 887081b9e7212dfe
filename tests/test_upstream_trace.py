"""What one upstream attempt leaves behind: a log line with the path's template (never an id),
a metric, and an entry in its request's stats (with headers and bodies only for `explain`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from conftest import events
from prometheus_client import REGISTRY

from gateway import logs
from gateway.upstream import trace
from gateway.upstream.call import Call

CALL = Call(
    "PUT", "/users/1001", "/users/{{ id }}", {"x": "1"}, {"Authorization": "k"}, {"user": {}}
)


def sampled(status: str) -> float:
    labels = {"upstream": "crm", "status": status, "retry_reason": "401"}
    return REGISTRY.get_sample_value("crm_gateway_upstream_attempts_total", labels) or 0.0


async def test_an_attempt_is_logged_by_template_counted_and_in_the_stats(capsys: Any) -> None:
    stats = logs.start_request()
    before = sampled("200")
    again = replace(CALL, attempt=2, retry_reason="401")
    with trace.attempt("crm", again) as outcome:
        outcome.status = 200
    (line,) = [e for e in events(capsys.readouterr().out) if e["event"] == "upstream"]
    assert line["path"] == "/users/{{ id }}" and "1001" not in str(line)
    assert (line["status"], line["attempt"], line["retry_reason"]) == (200, 2, "401")
    assert sampled("200") == before + 1
    (entry,) = stats.calls
    assert entry["url"] == "/users/1001?x=1" and entry["status"] == 200
    assert "headers" not in entry and stats.upstream_calls == 1


async def test_explain_keeps_headers_and_bodies_and_a_failure_is_still_recorded() -> None:
    stats = logs.start_request()
    stats.keep_bodies = True
    with pytest.raises(TimeoutError), trace.attempt("crm", CALL):
        raise TimeoutError
    (entry,) = stats.calls
    assert entry["status"] == "error" and entry["body"] == {"user": {}}
    assert entry["headers"] == {"Authorization": "k"}
