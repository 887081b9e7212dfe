"""What tracing costs a request, off and on: `python tests/bench/tracing.py` (not part of
`make bench` or `make test`; about 3 minutes; wrk and nginx as `make bench` installs them).

1. The hooks alone (timeit): what the middleware and an upstream attempt run for tracing, off
   without a `traceparent`, off with one (passed on to the CRM), and on (a span per request and
   per attempt, into a batch processor whose exporter drops them).
2. End to end: one gateway process a variant, all in front of one nginx upstream serving the
   sandbox's answers from static files, driven by wrk in turn (find customer: one upstream
   attempt a request), BENCH_RUNS runs of BENCH_SECONDS each: requests a second, and the
   gateway's CPU time a request (its export thread included). The variants: the code before
   tracing (BENCH_BASE, a directory holding that checkout's `gateway/`, when given), tracing
   off, off with a caller's traceparent, on (spans to a local OTLP collector), and on with a
   caller's traceparent.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import timeit
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from load import FIND, parse
from procs import EMAIL, KEY, TOKEN, free_port, nginx, started, wait_http
from upstream import upstream_conf, write_static
from usage import cpu_seconds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def hooks() -> dict[str, float]:
    """Microseconds a request spends in tracing's hooks: begin, two attempts, end."""
    from multidict import CIMultiDict, CIMultiDictProxy
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from gateway import tracing

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    plain = {"Host": "gw", "Authorization": KEY, "User-Agent": "khoros", "Accept": "*/*"}
    without = CIMultiDictProxy(CIMultiDict(plain))
    with_parent = CIMultiDictProxy(CIMultiDict({**plain, "traceparent": TRACEPARENT}))
    provider = TracerProvider(shutdown_on_exit=False)
    # A queue the timing loop cannot fill (a full one drops spans at once, which is cheaper).
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=2_000_000))
    off, on = tracing.Tracing(), tracing.Tracing(provider)

    def request(t: tracing.Tracing, headers: Any) -> None:
        traced = t.begin(headers, "GET", "/api/v1/customer/{id}", "find_customer", "r-1")
        for n in (1, 2):
            span = tracing.attempt("crm", "GET", "/api/v2/users/{{ id }}", n, None)
            if span is not None:
                span.end(200)
        if traced is not None:
            traced.end(200, {"crm_gateway.upstream_calls": 2})

    out = {}
    for name, t, headers in [
        ("off", off, without),
        ("off, caller's traceparent", off, with_parent),
        ("on", on, without),
        ("on, caller's traceparent", on, with_parent),
    ]:
        number = 20000
        best = min(timeit.repeat(lambda: request(t, headers), number=number, repeat=5))  # noqa: B023
        out[name] = best / number * 1e6
    provider.shutdown()
    return out


def collector(port: int) -> None:
    """An OTLP/HTTP collector that accepts and drops (run as its own process)."""
    from aiohttp import web

    async def receive(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(content_type="application/x-protobuf")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", receive)
    app.router.add_get("/", lambda r: web.Response())  # type: ignore[arg-type,return-value]
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def wrk_find(base: str, traceparent: bool) -> dict[str, float]:
    import subprocess

    headers = f'wrk.headers["Authorization"] = "{KEY}"\n'
    if traceparent:
        headers += f'wrk.headers["traceparent"] = "{TRACEPARENT}"\n'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "GET"\nwrk.path = "{FIND.path}"\n{headers}')
    try:
        duration = max(1, round(SECONDS))
        done = subprocess.run(
            ["wrk", "-t1", "-c32", f"-d{duration}s", "--latency", "-s", script.name, base],
            capture_output=True, text=True, check=True, timeout=duration + 30,
        )  # fmt: skip
    finally:
        os.unlink(script.name)
    return parse(done.stdout)


def end_to_end() -> list[tuple[str, float, float, float]]:
    """(variant, requests/s, CPU ms a request, p99 ms), medians over the runs."""
    base_dir = os.environ.get("BENCH_BASE")
    with tempfile.TemporaryDirectory(prefix="bench-tracing-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        upstream_port, collector_port = free_port(), free_port()
        write_static(root, free_port())
        stack.enter_context(
            nginx(upstream_conf(root, upstream_port), f"http://127.0.0.1:{upstream_port}/api/v2/user_fields")
        )  # fmt: skip
        stack.enter_context(started(sys.executable, __file__, "--collector", str(collector_port)))
        wait_http(f"http://127.0.0.1:{collector_port}/")
        common = {
            "ZENDESK_URL": f"http://127.0.0.1:{upstream_port}",
            "ZENDESK_EMAIL": EMAIL,
            "ZENDESK_API_TOKEN": TOKEN,
            "GATEWAY_API_KEYS": KEY,
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        }
        on = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}"}
        variants: list[tuple[str, dict[str, str], bool, str | None]] = [
            ("off", {}, False, None),
            ("off (again: the noise)", {}, False, None),
            ("off, caller's traceparent", {}, True, None),
            ("on", on, False, None),
            ("on, caller's traceparent", on, True, None),
        ]
        if base_dir:
            variants.insert(0, ("before tracing", {}, False, base_dir))
        servers = []
        for name, env, parent, checkout in variants:
            port = free_port()
            code = Path(checkout or ROOT)  # its own `gateway/`, first on the path
            run = f"import sys, runpy; sys.path.insert(0, {str(code)!r}); "
            run += "runpy.run_module('gateway', run_name='__main__')"
            cmd = [sys.executable, "-c", run, "serve", "--port", str(port),
                   "--config", str(code / "config.example.yaml")]  # fmt: skip
            proc = stack.enter_context(started(*cmd, env={**common, **env}))
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/healthz")
            wait_http(f"{url}{FIND.path}", {"Authorization": KEY})  # field definitions cached
            servers.append((name, url, proc, parent))
        figures: dict[str, list[tuple[float, float, float]]] = {s[0]: [] for s in servers}
        for _ in range(RUNS):
            for name, url, proc, parent in servers:  # in turn: a busy moment falls on all
                before = cpu_seconds([proc.pid])
                got = wrk_find(url, parent)
                spent = cpu_seconds([proc.pid]) - before
                figures[name].append((got["rps"], spent / got["requests"] * 1000, got["p99"]))
        return [
            (name, *(statistics.median(run[i] for run in runs) for i in range(3)))
            for name, runs in figures.items()
        ]


def main() -> None:
    if sys.argv[1:2] == ["--collector"]:
        collector(int(sys.argv[2]))
        return
    print("tracing's hooks, a request with two upstream attempts (best of 5):")
    for name, micro in hooks().items():
        print(f"  {name:28} {micro:8.2f} µs")
    print(f"\nend to end, find customer, 32 connections, median of {RUNS} x {SECONDS:.0f} s:")
    print(f"  {'variant':28} {'req/s':>8} {'CPU ms/req':>11} {'p99 ms':>8}")
    for name, rps, cpu, p99 in end_to_end():
        print(f"  {name:28} {rps:8.0f} {cpu:11.3f} {p99:8.2f}")


if __name__ == "__main__":
    main()
