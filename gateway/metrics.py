"""Prometheus metrics. With several worker processes (`serve --workers N`), each writes to
PROMETHEUS_MULTIPROC_DIR and `/metrics` (gateway.ops) adds them up (prometheus-client's
multiprocess mode)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10, 20)

REQUESTS = Counter("crm_gateway_requests_total", "Requests served", ["operation", "status"])
LATENCY = Histogram(
    "crm_gateway_request_duration_seconds", "Time to answer", ["operation"], buckets=_SECONDS
)
UPSTREAM = Counter(
    "crm_gateway_upstream_attempts_total",
    "Upstream attempts, by answer and by why the attempt was a retry",
    ["upstream", "status", "retry_reason"],
)
UPSTREAM_LATENCY = Histogram(
    "crm_gateway_upstream_duration_seconds", "Upstream attempt time", ["upstream"], buckets=_SECONDS
)
CACHE = Counter("crm_gateway_cache_total", "Cache lookups by outcome", ["cache", "outcome"])
CIRCUIT = Gauge(
    "crm_gateway_circuit_state",
    "Circuit breaker: 0 closed, 1 half open, 2 open",
    ["upstream"],
    multiprocess_mode="max",
)
UPSTREAM_UP = Gauge(
    "crm_gateway_upstream_up",
    "The CRM as this process last saw it: 1 answering, 0 not (a failed readiness probe of "
    "/readyz?upstream=1, the circuit opening); the lowest over the workers",
    ["upstream"],
    multiprocess_mode="livemin",
)
BUDGET_EXHAUSTED = Counter(
    "crm_gateway_budget_exhausted_total", "Requests answered 504: the budget ran out", ["operation"]
)
SHARED_STATE_UP = Gauge(
    "crm_gateway_shared_state_up",
    "Shared state (Redis): 1 reachable, 0 not (each process on its own meanwhile)",
    multiprocess_mode="livemin",
)
SHARED_STATE_ERRORS = Counter(
    "crm_gateway_shared_state_errors_total",
    "Redis calls that failed or timed out, by operation (each fell back to per-process state)",
    ["operation"],
)
HEADER_TIMEOUTS = Counter(
    "crm_gateway_header_timeouts_total",
    "Connections closed because they had not sent a whole request head in time "
    "(server.header_timeout_seconds)",
)

LOG_LINES_DROPPED = Counter(
    "crm_gateway_log_lines_dropped_total",
    "Log lines dropped because the output did not keep up (its reader stalled or went away)",
)

_children: dict[tuple[Any, tuple[str, ...]], Any] = {}


def child(metric: Any, *values: str) -> Any:
    """``metric.labels(*values)``, resolved once per label values: `labels()` takes a lock and
    checks its arguments on every call, and a request makes several. The label values of this
    gateway are few (operations, statuses, caches, upstreams), so the children kept are too."""
    key = (metric, values)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*values)
    return found
