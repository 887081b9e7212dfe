"""What one attempt leaves behind: a log line (the path as its template, never ids), metrics,
and an entry in the request's stats (for `explain` and the admin's debug trace)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from gateway import logs, metrics
from gateway.upstream.call import Call


class Attempt:
    """Filled in by the transport: the status, or what went wrong instead of one."""

    status: int | str = "error"


@contextmanager
def attempt(upstream: str, call: Call) -> Iterator[Attempt]:
    outcome = Attempt()
    entry = record(call)
    started = time.perf_counter()
    try:
        yield outcome
    finally:
        took = time.perf_counter() - started
        reason = call.retry_reason
        duration_ms = round(took * 1000, 1)
        entry.update(status=outcome.status, retry_reason=reason, duration_ms=duration_ms)
        metrics.UPSTREAM.labels(upstream, str(outcome.status), reason or "").inc()
        metrics.UPSTREAM_LATENCY.labels(upstream).observe(took)
        logs.get().info(
            "upstream",
            method=call.method,
            path=call.route,
            status=outcome.status,
            attempt=call.attempt,
            retry_reason=reason,
            duration_ms=duration_ms,
        )


def record(call: Call) -> dict[str, Any]:
    """The attempt in the request's stats; the dict is completed once there is an outcome."""
    entry: dict[str, Any] = {
        "method": call.method,
        "path": call.route,
        "url": call.path,
        "attempt": call.attempt,
    }
    stats = logs.stats()
    if stats is not None:
        stats.upstream_calls += 1
        stats.calls.append(entry)
        if call.query:
            entry["url"] += "?" + urlencode(call.query)
        if stats.keep_bodies:
            entry.update(headers=dict(call.headers), body=call.body)
    return entry
