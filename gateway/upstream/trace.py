"""What one attempt leaves behind: a log line (the path as its template, never ids), metrics,
an entry in the request's stats (for `explain` and the admin's debug trace), and its span,
whose trace context the attempt sends to the CRM (gateway.tracing)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from gateway import logs, metrics, tracing
from gateway.upstream.call import Call


class Attempt:
    """Filled in by the transport: the status, or what went wrong instead of one. ``headers``:
    the trace context the attempt carries to the CRM (none while nothing is traced)."""

    status: int | str = "error"
    headers: Mapping[str, str] = MappingProxyType({})


@contextmanager
def attempt(upstream: str, call: Call) -> Iterator[Attempt]:
    outcome = Attempt()
    entry = record(call)
    span = tracing.attempt(upstream, call.method, call.route, call.attempt, call.retry_reason)
    if span is not None:
        outcome.headers = span.headers
    started = time.perf_counter()
    try:
        yield outcome
    finally:
        took = time.perf_counter() - started
        reason = call.retry_reason
        duration_ms = round(took * 1000, 1)
        entry.update(status=outcome.status, retry_reason=reason, duration_ms=duration_ms)
        metrics.child(metrics.UPSTREAM, upstream, str(outcome.status), reason or "").inc()
        metrics.child(metrics.UPSTREAM_LATENCY, upstream).observe(took)
        ids: dict[str, str] = {}
        if span is not None:
            span.end(outcome.status)
            if span.span_id is not None:
                ids["span_id"] = span.span_id
        logs.get().info(
            "upstream",
            method=call.method,
            path=call.route,
            status=outcome.status,
            attempt=call.attempt,
            retry_reason=reason,
            duration_ms=duration_ms,
            **ids,
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
