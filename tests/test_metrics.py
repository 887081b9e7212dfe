"""/metrics: Prometheus text, and the counters move."""

from __future__ import annotations

import dataclasses
from typing import Any

from conftest import API, AUTH, DEFAULT_BREAKER, budgets, tuned
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import Config
from gateway.sandbox.server import Faults


async def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(m: dict[Any, float], name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_counters_move(make_client: Any, config: Config, faults: Faults) -> None:
    client = await make_client(budgets(config, default=0.5))
    before = await scrape(client)
    await client.get(f"{API}/customer/1001", headers=AUTH)
    await client.get(f"{API}/customer/1001", headers=AUTH)
    faults.delay = 5
    await client.get(f"{API}/customer/1001", headers=AUTH)  # 504
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("crm_gateway_requests_total", operation="find_customer", status="200") == 2
    assert moved("crm_gateway_requests_total", operation="find_customer", status="504") == 1
    assert moved("crm_gateway_request_duration_seconds_count", operation="find_customer") == 3
    assert moved("crm_gateway_budget_exhausted_total", operation="find_customer") == 1
    assert moved("crm_gateway_upstream_attempts_total", upstream="zendesk", status="200",
                 retry_reason="") >= 3  # fmt: skip
    assert moved("crm_gateway_cache_total", cache="field_definitions", outcome="hit") == 2


async def test_circuit_state_gauge(make_client: Any, config: Config, faults: Faults) -> None:
    breaker = dataclasses.replace(DEFAULT_BREAKER, min_requests=1, cooldown_seconds=60)
    client = await make_client(tuned(config, upstream={"circuit_breaker": breaker}))
    faults.status = 500
    await client.get(f"{API}/customer/1001", headers=AUTH)
    assert value(await scrape(client), "crm_gateway_circuit_state", upstream="zendesk") == 2
