"""`make bench`: what the gateway costs on top of the CRM, and how it holds up.

Starts, on 127.0.0.1: the sandbox CRM (the upstream), the gateway (1 and 2 workers), and nginx as
a plain pass-through to the same upstream; drives them with wrk; writes a markdown table and a
plot to tests/bench/results/ and prints the table. Every process it starts, it stops.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests/bench/results"
KEY = "bench-key"
UPSTREAM_AUTH = "Basic " + base64.b64encode(b"demo@example.com/token:sandbox-token").decode()
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
CONNECTIONS = 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def wait_http(url: str, headers: dict[str, str] | None = None, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2)
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


@contextmanager
def started(*cmd: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def gateway_bin() -> str:
    return str(Path(sys.executable).with_name("crm-gateway"))


@contextmanager
def sandbox(*extra: str) -> Iterator[str]:
    port = free_port()
    # No account limit: the benchmark measures the gateway, not a Zendesk plan's quota.
    no_limit = ("--account-limit", "0", "--user-update-limit", "0", "--ticket-update-limit", "0")
    with started(gateway_bin(), "sandbox", "--port", str(port), *no_limit, *extra):
        wait_port(port)  # not an API call: this sandbox may be made to hang or refuse
        yield f"http://127.0.0.1:{port}"


@contextmanager
def gateway(upstream: str, workers: int = 1) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        "ZENDESK_URL": upstream,
        "ZENDESK_EMAIL": "demo@example.com",
        "ZENDESK_API_TOKEN": "sandbox-token",
        "GATEWAY_API_KEYS": KEY,
        "EXPERTFLOW_API_KEYS": KEY,
    }
    cmd = [
        gateway_bin(),
        "serve",
        "--config",
        "config.example.yaml",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with started(*cmd, env=env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz")
        yield url, proc


@contextmanager
def nginx(upstream: str) -> Iterator[str]:
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-nginx-"))
    (work / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  upstream up {{ server {upstream.removeprefix("http://")}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    try:
        with started("nginx", "-c", str(work / "nginx.conf"), "-p", str(work)):
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/api/v2/users/1001", {"Authorization": UPSTREAM_AUTH})
            yield url
    finally:
        shutil.rmtree(work, ignore_errors=True)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(
    url: str,
    *,
    auth: str,
    body: dict[str, Any] | None = None,
    seconds: int = SECONDS,
    connections: int = CONNECTIONS,
) -> dict[str, float]:
    lua = f'wrk.headers["Authorization"] = "{auth}"\n'
    if body is not None:
        lua += 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        lua += f"wrk.body = {json.dumps(json.dumps(body))}\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t2",
                "--timeout",
                "10s",  # slow answers (a 429 wait, a hang) count, up to past the budget
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(script.name)

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*timeout (\d+)", out)
    max_ms = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    return {
        "rps": rps,
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": total,
        "non2xx": int(bad.group(1)) if bad else 0,
        "timeouts": int(errors.group(1)) if errors else 0,
        "max_ms": float(max_ms.group(1)) * _UNITS[max_ms.group(2)] if max_ms else float("nan"),
    }


def median_of(runs: int, **kw: Any) -> dict[str, float]:
    results = [wrk(**kw) for _ in range(runs)]
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


async def paced(url: str, auth: str, rate: int, seconds: float) -> tuple[float, float]:
    """p50 and p99 (ms) of requests sent at a steady `rate` per second."""
    import aiohttp

    latencies: list[float] = []
    async with aiohttp.ClientSession(headers={"Authorization": auth}) as session:

        async def one() -> None:
            started_at = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
            latencies.append((time.perf_counter() - started_at) * 1000)

        tasks = []
        begin = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    q = statistics.quantiles(latencies, n=100)
    return q[49], q[98]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the workers), in MB."""
    pids = [pid] + [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(pid)], capture_output=True, text=True
        ).stdout.split()
    ]
    total = 0
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024 / len(pids) if len(pids) == 1 else total / 1024 / (len(pids) - 1)


def metric(url: str, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"{url}/metrics").read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(p in line for p in want.split(",")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> int:
    rows: list[tuple[str, dict[str, float]]] = []
    facts: dict[str, Any] = {}
    email = {"email": "jane@example.com"}
    best = {"displayName": "Jane Doe", "screenName": "@janedoe", "email": "jane@example.com"}
    with sandbox() as up:
        find_up = f"{up}/api/v2/users/1001?include=identities,organizations"
        rows.append(
            ("upstream direct: find customer", median_of(RUNS, url=find_up, auth=UPSTREAM_AUTH))
        )
        with nginx(up) as proxy:
            rows.append(
                (
                    "nginx pass-through: find customer",
                    median_of(
                        RUNS,
                        url=f"{proxy}/api/v2/users/1001?include=identities,organizations",
                        auth=UPSTREAM_AUTH,
                    ),
                )
            )
        for workers in (1, 2):
            with gateway(up, workers) as (gw, proc):
                api = f"{gw}/api/v1"
                rows.append(
                    (
                        f"gateway {workers}w: find customer",
                        median_of(RUNS, url=f"{api}/customer/1001", auth=KEY),
                    )
                )
                if workers == 1:
                    rows.append(
                        (
                            "gateway 1w: search",
                            median_of(RUNS, url=f"{api}/customers", auth=KEY, body=email),
                        )
                    )
                    rows.append(
                        (
                            "gateway 1w: best match",
                            median_of(RUNS, url=f"{api}/customer/bestmatch", auth=KEY, body=best),
                        )
                    )
                    rows.append(
                        (
                            "gateway 1w: meta (cached)",
                            median_of(RUNS, url=f"{api}/meta/object/customer", auth=KEY),
                        )
                    )
                    rows.append(
                        (
                            "gateway 1w: /label (cached)",
                            median_of(RUNS, url=f"{gw}/label?api_key={KEY}", auth=KEY),
                        )
                    )
                    direct = asyncio.run(paced(find_up, UPSTREAM_AUTH, 500, 5))
                    through = asyncio.run(paced(f"{api}/customer/1001", KEY, 500, 5))
                    facts["added_p50_ms"] = through[0] - direct[0]
                    facts["added_p99_ms"] = through[1] - direct[1]
                    facts["paced_direct"] = direct
                    facts["paced_gateway"] = through
                    label_rps = rows[-1][1]["rps"]
                    seconds = max(5, int(100_000 / max(label_rps, 1)) + 2)
                    soak = wrk(f"{gw}/label?api_key={KEY}", auth=KEY, seconds=seconds)
                    facts["soak_requests"] = soak["requests"]
                    facts["rss_mb"] = rss_mb(proc.pid)
    with sandbox("--delay", "60") as hung, gateway(hung) as (gw, _):
        began = time.monotonic()
        try:
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{gw}/api/v1/customer/1001", headers={"Authorization": KEY}
                ),
                timeout=30,
            )
        except urllib.error.HTTPError as exc:
            facts["hang_status"] = exc.code
        facts["hang_seconds"] = time.monotonic() - began
    with sandbox("--status", "429", "--retry-after", "1") as limited, gateway(limited) as (gw, _):
        storm = wrk(f"{gw}/api/v1/customer/1001", auth=KEY, seconds=SECONDS, connections=16)
        facts["storm"] = storm
        facts["storm_attempts"] = metric(gw, "crm_gateway_upstream_attempts_total", status="429")
        facts["storm_requests"] = metric(
            gw, "crm_gateway_requests_total", operation="find_customer"
        )
    report(rows, facts)
    return 0


def report(rows: list[tuple[str, dict[str, float]]], facts: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    by = dict(rows)
    nginx_rps = by["nginx pass-through: find customer"]["rps"]
    gw_rps = by["gateway 1w: find customer"]["rps"]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    meta = by["gateway 1w: meta (cached)"]["rps"]
    label = by["gateway 1w: /label (cached)"]["rps"]
    storm, hang = facts["storm"], facts["hang_seconds"]
    attempts = facts["storm_attempts"] / max(facts["storm_requests"], 1)
    lines = [
        f"Machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}; "
        f"{RUNS} runs of {SECONDS} s each, median; wrk -t2 -c{CONNECTIONS}; "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        "| scenario | requests/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} |" for name, r in rows],
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| latency the gateway adds at 500 req/s (p50 / p99) | {facts['added_p50_ms']:.2f} / "
        f"{facts['added_p99_ms']:.2f} ms | ≤ 1 / ≤ 5 ms |",
        f"| find customer: gateway (1 worker) / nginx | {gw_rps / nginx_rps:.2f} | ≥ 0.25 |",
        f"| cached meta, per worker | {meta:,.0f} req/s | ≥ 5,000 |",
        f"| cached /label, per worker | {label:,.0f} req/s | ≥ 5,000 |",
        f"| RSS per worker after {facts['soak_requests']:,} requests | "
        f"{facts['rss_mb']:.0f} MB | ≤ 100 MB |",
        f"| upstream hangs: answer ({facts.get('hang_status')}) after | {hang:.2f} s "
        "| at the 7.2 s budget, never past it |",
        f"| 429 storm (Retry-After: 1): answers, slowest | {storm['requests']:,}, "
        f"{storm['max_ms'] / 1000:.2f} s | inside 7.2 s |",
        f"| 429 storm: upstream attempts per request | {attempts:.2f} | bounded (≤ 3) |",
    ]
    table = "\n".join(lines)
    (RESULTS / "latest.md").write_text(table + "\n")
    plot(rows, RESULTS / "latest.png")
    print(table)
    print(f"\nwritten: {RESULTS / 'latest.md'}, {RESULTS / 'latest.png'}")


def plot(rows: list[tuple[str, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, _ in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    left.barh(names, [r["rps"] for _, r in rows], color="#3b7dd8")
    left.set_xlabel("requests/s (more is better)")
    right.barh(names, [r["p99"] for _, r in rows], color="#d8793b")
    right.set_xlabel("p99 latency, ms (less is better)")
    left.invert_yaxis()
    fig.suptitle("crm-gateway on this machine: gateway vs nginx vs the upstream itself")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
