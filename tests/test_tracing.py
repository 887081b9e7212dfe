"""Tracing: the caller's W3C trace context reaches the CRM on every attempt with the same trace
id, spans (one per request, one per attempt) reach a local OTLP collector linked as parent and
children, the `OTEL_*` variables decide, ids join the log lines, and nothing secret or
personal is in a span. Off, a caller's context still passes through and no SDK object is made.
Real processes: each worker exports its own spans; the last are flushed at shutdown."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import aiohttp
import pytest
from conftest import (
    API,
    AUTH,
    SECRETS,
    Collector,
    Span,
    events,
    free_port,
    gateway,
    gateway_env,
    read_log,
    until_up,
)

from gateway import logs, tracing
from gateway.app import TRACING
from gateway.config import Config
from gateway.sandbox.server import TRACE_CONTEXT, Faults
from gateway.tracing import Tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
TRACESTATE = "khoros=t61rcWkgMzE"


def sent_to_crm(sandbox: Any) -> list[tuple[str, str | None, str | None]]:
    return list(sandbox.app[TRACE_CONTEXT])


def parent_of(traceparent: str | None) -> tuple[str, str]:
    """(trace id, parent span id) of a traceparent."""
    assert traceparent is not None
    version, trace_id, parent, flags = traceparent.split("-")
    assert version == "00" and len(flags) == 2 and int(flags, 16) >= 0  # 02: a random trace id
    return trace_id, parent


def sampled_flag(traceparent: str | None) -> bool:
    return traceparent is not None and bool(int(traceparent[-2:], 16) & 1)


async def served_and_exported(client: Any, collector: Collector, count: int) -> list[Span]:
    """The spans of what ``client`` served, once its app has shut down (the last flush)."""
    await client.close()
    return await collector.until(count)


async def test_a_traceparent_reaches_the_crm_and_the_spans_link_up(
    tracing_env: Collector, make_client: Any, config: Config, sandbox: Any
) -> None:
    client = await make_client(config)
    assert client.app[TRACING].on
    headers = {**AUTH, "traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    resp = await client.get(f"{API}/customer/1001/cases", headers=headers)
    assert resp.status == 200
    calls = sent_to_crm(sandbox)
    assert len(calls) >= 2  # the customer, then the cases
    assert all(parent_of(tp)[0] == TRACE_ID and state == TRACESTATE for _, tp, state in calls)
    spans = await served_and_exported(client, tracing_env, 1 + len(calls))
    (server,) = tracing_env.of_kind("SERVER")
    attempts = tracing_env.of_kind("CLIENT")
    assert server.trace_id == TRACE_ID and server.parent_id == CALLER_SPAN
    assert server.name == "GET /api/v1/customer/{id}/cases"
    assert server.attributes["crm_gateway.operation"] == "find_cases"
    assert server.attributes["http.response.status_code"] == 200
    assert 0 < server.attributes["crm_gateway.budget_left_ms"] <= 7200
    assert server.attributes["crm_gateway.request_id"] == resp.headers["X-Request-Id"]
    assert not server.error
    # Each attempt is a child of the request, and the CRM saw that attempt's own span.
    assert {a.parent_id for a in attempts} == {server.span_id}
    assert sorted(a.span_id for a in attempts) == sorted(parent_of(tp)[1] for _, tp, _ in calls)
    assert all(a.trace_id == TRACE_ID for a in attempts)
    (cases,) = [a.attributes for a in attempts if "tickets" in a.attributes["url.template"]]
    assert cases["url.template"] == "/api/v2/users/{{ id }}/tickets/requested"
    assert cases["http.request.method"] == "GET" and cases["crm_gateway.attempt"] == 1
    assert cases["crm_gateway.upstream"] == "zendesk" and cases["http.response.status_code"] == 200
    assert spans[0].resource["service.name"] == "crm-gateway"
    # Templates, never the ids or the customer's data: 1001 is the customer's id.
    texts = [str(v) for s in spans for v in s.attributes.values()] + [s.name for s in spans]
    assert not [t for t in texts if "1001" in t or "@" in t or any(x in t for x in SECRETS)]


async def test_without_a_traceparent_a_trace_starts_here(
    tracing_env: Collector, make_client: Any, config: Config, sandbox: Any
) -> None:
    client = await make_client(config)
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200
    calls = sent_to_crm(sandbox)
    await served_and_exported(client, tracing_env, 1 + len(calls))
    (server,) = tracing_env.of_kind("SERVER")
    assert server.parent_id is None
    attempts = {a.span_id for a in tracing_env.of_kind("CLIENT") if a.parent_id == server.span_id}
    assert {parent_of(tp) for _, tp, _ in calls} == {(server.trace_id, a) for a in attempts}
    assert {state for *_, state in calls} == {None}


async def test_retries_are_attempts_and_a_5xx_is_an_error(
    tracing_env: Collector, make_client: Any, fast: Config, sandbox: Any, faults: Faults
) -> None:
    client = await make_client(fast)
    faults.status, faults.times = 503, 1
    headers = {**AUTH, "traceparent": TRACEPARENT}
    assert (await client.get(f"{API}/customer/1001", headers=headers)).status == 200
    faults.status, faults.times = 500, None
    assert (await client.get(f"{API}/customer/1002", headers=headers)).status == 502
    calls = sent_to_crm(sandbox)
    await served_and_exported(client, tracing_env, 2 + len(calls))
    ok, failed = sorted(tracing_env.of_kind("SERVER"), key=lambda s: s.name.endswith("1002"))
    by_parent = {
        s.span_id: [a for a in tracing_env.of_kind("CLIENT") if a.parent_id == s.span_id]
        for s in (ok, failed)
    }
    fields = [a for a in by_parent[ok.span_id] if a.attributes["url.template"].endswith("fields")]
    retried = sorted(fields, key=lambda a: a.attributes["crm_gateway.attempt"])
    assert [a.attributes.get("http.response.status_code") for a in retried] == [503, 200]
    assert retried[0].error and not retried[1].error
    assert retried[1].attributes["crm_gateway.retry_reason"] == "503"
    assert retried[1].attributes["http.request.resend_count"] == 1
    assert not ok.error
    assert failed.error and failed.attributes["http.response.status_code"] == 502
    assert len(by_parent[failed.span_id]) == 3 and all(a.error for a in by_parent[failed.span_id])
    assert len({parent_of(tp)[1] for _, tp, _ in calls}) == len(calls)  # a span per attempt


async def test_trace_and_span_ids_join_the_log_lines(
    tracing_env: Collector, make_client: Any, config: Config, capsys: Any
) -> None:
    client = await make_client(config)
    headers = {**AUTH, "traceparent": TRACEPARENT, "X-Request-Id": "req-42"}
    assert (await client.get(f"{API}/customer/1001", headers=headers)).status == 200
    lines = events(capsys.readouterr().out)
    (request,) = [e for e in lines if e["event"] == "request"]
    upstream = [e for e in lines if e["event"] == "upstream"]
    await served_and_exported(client, tracing_env, 1 + len(upstream))
    (server,) = tracing_env.of_kind("SERVER")
    attempts = tracing_env.of_kind("CLIENT")
    assert {e["request_id"] for e in [request, *upstream]} == {"req-42"}
    assert {e["trace_id"] for e in [request, *upstream]} == {TRACE_ID}
    assert request["span_id"] == server.span_id
    assert sorted(e["span_id"] for e in upstream) == sorted(a.span_id for a in attempts)


async def test_off_a_callers_context_passes_through_and_nothing_is_made(
    make_client: Any, config: Config, sandbox: Any, capsys: Any
) -> None:
    client = await make_client(config)
    traced = client.app[TRACING]
    assert not traced.on and traced.provider is None
    assert traced.begin({"x": "y"}, "GET", "/", "meta", "r") is None  # no traceparent: nothing
    headers = {**AUTH, "traceparent": TRACEPARENT, "tracestate": TRACESTATE}
    assert (await client.get(f"{API}/customer/1001", headers=headers)).status == 200
    first = len(sent_to_crm(sandbox))
    assert (await client.get(f"{API}/customer/1002", headers=AUTH)).status == 200
    contexts = [c[1:] for c in sent_to_crm(sandbox)]
    assert set(contexts[:first]) == {(TRACEPARENT, TRACESTATE)}  # as it came, to every call
    assert set(contexts[first:]) == {(None, None)}
    requests = [e for e in events(capsys.readouterr().out) if e["event"] == "request"]
    assert (requests[0]["trace_id"], requests[0]["span_id"]) == (TRACE_ID, CALLER_SPAN)
    assert "trace_id" not in requests[1] and "span_id" not in requests[1]


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"00-{'0' * 32}-{CALLER_SPAN}-01",  # an invalid trace id
        f"ff-{TRACE_ID}-{CALLER_SPAN}-01",  # a forbidden version
        f"00-{TRACE_ID}-{CALLER_SPAN}-01-extra",
        f"00-{TRACE_ID}\ud800-{CALLER_SPAN}-01",  # not text
    ],
)
def test_a_malformed_traceparent_is_no_context(traceparent: str) -> None:
    assert Tracing().begin({"traceparent": traceparent}, "GET", "/", "meta", "r") is None


async def test_the_sampler_and_service_name_come_from_the_environment(
    tracing_env: Collector,
    make_client: Any,
    config: Config,
    sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gateway-eu")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    client = await make_client(config)
    assert client.app[TRACING].service == "gateway-eu"
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200
    unsampled = sent_to_crm(sandbox)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    sampled = await make_client(config)
    assert (await sampled.get(f"{API}/customer/1001", headers=AUTH)).status == 200
    kept = sent_to_crm(sandbox)[len(unsampled) :]
    await client.close()
    await served_and_exported(sampled, tracing_env, 1 + len(kept))
    exported = {s.trace_id for s in tracing_env.spans}
    assert {s.resource["service.name"] for s in tracing_env.spans} == {"gateway-eu"}
    assert {parent_of(tp)[0] for _, tp, _ in kept} == exported
    assert not exported & {parent_of(tp)[0] for _, tp, _ in unsampled}  # not exported,
    assert not any(sampled_flag(tp) for _, tp, _ in unsampled)  # and the CRM is told so
    assert all(sampled_flag(tp) for _, tp, _ in kept)


@pytest.mark.parametrize(
    ("env", "on", "problem"),
    [
        ({}, False, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, True, None),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "true"}, False, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_EXPORTER": "none"}, False, None),
        ({"OTEL_TRACES_EXPORTER": "console"}, False, None),  # no endpoint: not asked for
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_TRACES_EXPORTER": "console"},
         False, "only otlp"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
         False, "only http/protobuf"),
    ],
)  # fmt: skip
def test_when_tracing_is_on(env: dict[str, str], on: bool, problem: str | None) -> None:
    found_on, found_problem = tracing.settings(env)
    assert found_on is on
    assert (problem is None and found_problem is None) or (problem or "?") in str(found_problem)


def test_the_collector_is_the_traces_endpoint_or_the_base_one_and_its_path() -> None:
    assert tracing.collector({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == (
        "http://c:4318/v1/traces"
    )
    both = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "b"}
    assert tracing.collector(both) == "b"


async def test_a_collectors_key_is_sent_but_never_logged(
    tracing_env: Collector,
    make_client: Any,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    key = "collector-k3y-s3cret"
    SECRETS.add(key)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key={key}")
    client = await make_client(config)
    logs.get().info("probe", detail=f"the key is {key}")
    assert (await client.get(f"{API}/customer/1001", headers=AUTH)).status == 200
    await served_and_exported(client, tracing_env, 2)
    assert tracing_env.headers[0]["x-api-key"] == key
    out = capsys.readouterr().out
    assert key not in out and "the key is [secret]" in out


# -- real processes -------------------------------------------------------------------------


async def test_each_worker_exports_its_own_spans(
    watched_sandbox: Any, collector: Collector, processes: Any, tmp_path: Any
) -> None:
    env = gateway_env(
        str(watched_sandbox.make_url("")).rstrip("/"),
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="100",
    )
    port = free_port()
    args = ("serve", "--config", "config.example.yaml", "--port", str(port), "--workers", "2")
    supervisor = gateway(*args, env=env, log=tmp_path / "gateway.log")
    processes.append(supervisor)
    await until_up(port)
    sent: list[str] = []
    # A new connection each time, many at once, until both workers have served (and exported).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:

        async def one(n: int) -> None:
            trace_id = f"{len(sent) + n:032x}"
            headers = {**AUTH, "traceparent": f"00-{trace_id}-{CALLER_SPAN}-01"}
            async with http.get(
                f"http://127.0.0.1:{port}{API}/customer/1001", headers=headers
            ) as r:
                assert r.status == 200
            sent.append(trace_id)

        for _ in range(40):
            await asyncio.gather(*(one(n) for n in range(1, 9)))
            await asyncio.sleep(0.3)
            if len({s.resource["process.pid"] for s in collector.spans}) == 2:
                break
    supervisor.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(supervisor.wait, 30) == 0
    processes.remove(supervisor)
    servers = collector.of_kind("SERVER")
    assert sorted(s.trace_id for s in servers) == sorted(sent)  # each request once, none lost
    assert len({s.resource["process.pid"] for s in servers}) == 2
    parents = {s.span_id: s for s in servers}
    for attempt in collector.of_kind("CLIENT"):
        request = parents[attempt.parent_id or ""]
        assert attempt.trace_id == request.trace_id
        assert attempt.resource["process.pid"] == request.resource["process.pid"]
    read_log(tmp_path / "gateway.log")


async def test_the_last_spans_are_flushed_at_shutdown(
    watched_sandbox: Any, collector: Collector, processes: Any, tmp_path: Any
) -> None:
    """Batches every 10 minutes: only the flush at SIGTERM can have sent them."""
    env = gateway_env(
        str(watched_sandbox.make_url("")).rstrip("/"),
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_SERVICE_NAME="flushed",
    )
    port = free_port()
    log = tmp_path / "gateway.log"
    args = ("serve", "--config", "config.example.yaml", "--port", str(port))
    proc = gateway(*args, env=env, log=log)
    processes.append(proc)
    await until_up(port)
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            headers = {**AUTH, "traceparent": TRACEPARENT}
            async with http.get(
                f"http://127.0.0.1:{port}{API}/customer/1001", headers=headers
            ) as r:
                assert r.status == 200
    await asyncio.sleep(0.3)
    assert collector.spans == []
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 30) == 0
    processes.remove(proc)
    assert len(collector.of_kind("SERVER")) == 3
    assert len(collector.of_kind("CLIENT")) == len(sent_to_crm(watched_sandbox)) >= 3
    assert {s.resource["service.name"] for s in collector.spans} == {"flushed"}
    assert {s.resource["process.pid"] for s in collector.spans} == {proc.pid}
    (started,) = [e for e in read_log(log) if e["event"] == "tracing_on"]
    assert started["collector"] == collector.url and started["service"] == "flushed"


async def test_an_all_digit_trace_id_is_logged_whole(
    make_client: Any, config: Config, capsys: Any
) -> None:
    """Ids are ours: the masking of phone numbers (long digit runs) leaves them alone."""
    digits, span = "12345678901234567890123456789012", "1234567890123456"
    client = await make_client(config)
    headers = {**AUTH, "traceparent": f"00-{digits}-{span}-01"}
    assert (await client.get(f"{API}/customer/1001", headers=headers)).status == 200
    (request,) = [e for e in events(capsys.readouterr().out) if e["event"] == "request"]
    assert (request["trace_id"], request["span_id"]) == (digits, span)
