"""What one attempt leaves behind: a log line (the path as its template, never ids), metrics,
an entry in the request's stats (for `explain` and the admin's debug trace), and its span,
whose trace context the attempt sends to the CRM (gateway.tracing)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from gateway import logs, metrics, tracing
from gateway.upstream.call import Call


class Attempt:
    """Filled in by the transport: the status, or what went wrong instead of one. ``headers``:
    the trace context the attempt carries to the CRM (none while nothing is traced). On
    leaving ``with``, the attempt is recorded (a class, not a generator: every attempt passes
    here)."""

    status: int | str = "error"
    headers: Mapping[str, str] = MappingProxyType({})

    def __init__(self, upstream: str, call: Call) -> None:
        self._upstream, self._call = upstream, call
        self._entry = record(call)
        self._span = tracing.attempt(
            upstream, call.method, call.route, call.attempt, call.retry_reason
        )
        if self._span is not None:
            self.headers = self._span.headers

    def __enter__(self) -> Attempt:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        took = time.perf_counter() - self._started
        call, upstream, span = self._call, self._upstream, self._span
        reason = call.retry_reason
        duration_ms = round(took * 1000, 1)
        self._entry.update(status=self.status, retry_reason=reason, duration_ms=duration_ms)
        metrics.child(metrics.UPSTREAM, upstream, str(self.status), reason or "").inc()
        metrics.child(metrics.UPSTREAM_LATENCY, upstream).observe(took)
        ids: dict[str, str] = {}
        if span is not None:
            span.end(self.status)
            if span.span_id is not None:
                ids["span_id"] = span.span_id
        logs.get().info(
            "upstream",
            method=call.method,
            path=call.route,
            status=self.status,
            attempt=call.attempt,
            retry_reason=reason,
            duration_ms=duration_ms,
            **ids,
        )


def attempt(upstream: str, call: Call) -> Attempt:
    """``with attempt(upstream, call) as a``: the transport sets ``a.status``."""
    return Attempt(upstream, call)


# A query's text, by its items: the same few queries (the mapping's) come back on every call.
_QUERIES: dict[tuple[tuple[str, str], ...], str] = {}


def _query_text(query: Mapping[str, str]) -> str:
    key = tuple(query.items())
    text = _QUERIES.get(key)
    if text is None:
        if len(_QUERIES) >= 1024:  # searches carry the caller's values: bounded
            _QUERIES.clear()
        text = _QUERIES[key] = urlencode(query)
    return text


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
            entry["url"] += "?" + _query_text(call.query)
        if stats.keep_bodies:
            entry.update(headers=dict(call.headers), body=call.body)
    return entry
