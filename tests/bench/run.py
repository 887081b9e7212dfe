"""`make bench`: what the gateway costs on top of the CRM, beside what it would cost by hand.

Starts, on 127.0.0.1: nginx as the upstream, answering Zendesk-shaped JSON from static files
(upstream.py); the gateway with 1 and with 2 workers in front of it; the smallest honest aiohttp
service for the same routes (reference.py); and nginx as a plain proxy_pass (the floor). All run
at once, and wrk drives them in turn, route by route, so that a busy moment of a shared machine
falls on all of them alike; each figure is the median of BENCH_RUNS runs of BENCH_SECONDS.
Then: a mixed soak until each gateway worker has served 100k requests, and its RSS; with
BENCH_PROFILE=1, py-spy flame graphs of find customer; and against the sandbox, an upstream that
hangs and one that answers 429. Writes tests/bench/results/latest.md and latest.png, prints the
table. Every process it starts, it stops by its own process group.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any

import orjson
from load import BEST, FIND, LABEL, META, ROUTES, SEARCH, Route, wrk
from procs import (
    KEY,
    fetch,
    free_port,
    gateway,
    nginx,
    reference,
    rss_mb,
    sandbox,
    started,
    worker_pids,
)
from report import RESULTS, write
from upstream import front_conf, unexpected, upstream_conf, write_static
from usage import spent, usage

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0")
CONNECTIONS = (1, 32)
SOAK_PER_WORKER = int(os.environ.get("BENCH_SOAK", "100000"))  # requests a worker


@dataclass
class Server:
    name: str
    url: str
    proc: Popen[bytes]
    serves: tuple[Route, ...]
    upstream: Popen[bytes]  # the upstream nginx, whose CPU is counted apart
    workers: int = 1
    served: int = 0  # requests answered, counted from wrk

    def measure(
        self, routes: tuple[Route, ...], seconds: float, connections: int
    ) -> dict[str, float]:
        """One wrk run, and where the CPU went meanwhile."""
        pids, upstream = worker_pids(self.proc), worker_pids(self.upstream)
        before = usage(pids, upstream)
        result = wrk(self.url, routes, seconds=seconds, connections=connections)
        result |= spent(before, usage(pids, upstream), int(result["requests"]))
        self.served += int(result["requests"])
        return result


@contextmanager
def servers(root: Path) -> Iterator[list[Server]]:
    """The upstream, and the four servers measured in front of it, all running."""
    with ExitStack() as stack:
        up_port = free_port()
        write_static(root, up_port)
        upstream = f"http://127.0.0.1:{up_port}"
        up_proc = stack.enter_context(
            nginx(upstream_conf(root, up_port), f"{upstream}/api/v2/user_fields")
        )
        gw1, proc1 = stack.enter_context(gateway(upstream, workers=1))
        _keep_cached_answers(gw1, root / "cached")
        gw2, proc2 = stack.enter_context(gateway(upstream, workers=2))
        ref, ref_proc = stack.enter_context(reference(upstream, root / "cached"))
        front_port = free_port()
        front = f"http://127.0.0.1:{front_port}"
        front_proc = stack.enter_context(
            nginx(front_conf(root, front_port, up_port), f"{front}/label")
        )
        yield [
            Server("gateway 1w", gw1, proc1, ROUTES, up_proc),
            Server("gateway 2w", gw2, proc2, ROUTES, up_proc, workers=2),
            Server("aiohttp reference", ref, ref_proc, _serving(ROUTES, "reference"), up_proc),
            Server("nginx", front, front_proc, _serving(ROUTES, "nginx"), up_proc),
        ]


def _serving(routes: tuple[Route, ...], flag: str) -> tuple[Route, ...]:
    return tuple(r for r in routes if getattr(r, flag))


def _call(url: str, route: Route) -> tuple[int, Any]:
    headers = {"Authorization": KEY, "X-API-Key": KEY, "Content-Type": "application/json"}
    body = orjson.dumps(route.body) if route.body is not None else None
    status, raw = fetch(url + route.path, headers, body)
    return status, orjson.loads(raw) if status == 200 else raw[:300]


def _keep_cached_answers(gateway_url: str, into: Path) -> None:
    """The gateway's meta and /label answers, for the reference and nginx to serve."""
    into.mkdir()
    for route, name in ((META, "meta.json"), (LABEL, "label.json")):
        status, body = _call(gateway_url, route)
        if status != 200:
            raise RuntimeError(f"the gateway answered {route.name} with {status}: {body!r}")
        (into / name).write_bytes(orjson.dumps(body))


def check_answers(all_servers: list[Server]) -> None:
    """Every server answers every route it serves with a 200 and the customer the bench asks
    for; the reference's customer is the gateway's, field for field: a fast wrong answer is no
    benchmark."""
    gateway_customer = _call(all_servers[0].url, FIND)[1]
    for server in all_servers:
        for route in server.serves:
            status, body = _call(server.url, route)
            if status != 200:
                raise RuntimeError(f"{server.name} answered {route.name} with {status}: {body!r}")
            if route is FIND and server.name != "nginx":
                wrong = {k: v for k, v in body.items() if gateway_customer.get(k) != v}
                if wrong or body.get("name") != "Jane Doe":
                    raise RuntimeError(f"{server.name}: find customer differs: {wrong or body}")
            listed = route in (SEARCH, BEST) and server.name.startswith("gateway")
            if listed and [c["id"] for c in body][:1] != ["1001"]:
                raise RuntimeError(f"{server.name}: {route.name} did not find 1001: {body}")


Cell = tuple[str, str, int]  # route, server, connections


def series(all_servers: list[Server]) -> dict[Cell, dict[str, float]]:
    """Every (route, connections, server) in turn, RUNS times; the median of each figure."""
    cells = [
        (route, c, server)
        for route in ROUTES
        for c in CONNECTIONS
        for server in all_servers
        if route in server.serves
    ]
    for route, _, server in cells:  # warm up: caches filled, connections open
        server.measure((route,), seconds=1, connections=32)
    runs: dict[Cell, list[dict[str, float]]] = {}
    for n in range(RUNS):
        print(f"run {n + 1} of {RUNS}: {len(cells)} measurements of {SECONDS:g} s", flush=True)
        for route, c, server in cells:
            result = server.measure((route,), seconds=SECONDS, connections=c)
            runs.setdefault((route.name, server.name, c), []).append(result)
    return {
        cell: {k: statistics.median(r[k] for r in results) for k in results[0]}
        | {"non2xx": sum(r["non2xx"] + r["errors"] for r in results)}
        for cell, results in runs.items()
    }


def soak(server: Server) -> dict[str, float]:
    """Every route in turn until each worker has served SOAK_PER_WORKER requests; then the
    largest worker's RSS."""
    bad = 0
    while True:  # at least once: every route in one run, as a busy gateway sees them
        result = server.measure(server.serves, seconds=10, connections=32)
        bad += int(result["non2xx"] + result["errors"])
        if server.served >= SOAK_PER_WORKER * server.workers:
            break
    rss = [rss_mb(pid) for pid in worker_pids(server.proc)]
    return {"rss_mb": max(rss), "per_worker": server.served / server.workers, "non2xx": bad}


def profile(server: Server, name: str) -> Path:
    """A py-spy flame graph of one serving process while find customer runs at 32."""
    out = RESULTS / f"flame-{name}-find-customer.svg"
    seconds = max(10, int(2 * SECONDS))
    spy = str(Path(sys.executable).with_name("py-spy"))
    pid = str(worker_pids(server.proc)[0])
    # Every thread: with --gil, the event loop's socket writes (uvloop keeps the GIL through
    # the syscall) were drawn several times larger than the CPU time they take. The log
    # writer's thread shows apart, mostly asleep between batches. --function: one box a
    # function, not one a line.
    command = [spy, "record", "--function", "-o", str(out), "-p", pid, "-d", str(seconds)]
    with started(*command) as proc:
        time.sleep(1)  # py-spy attached
        wrk(server.url, (FIND,), seconds=seconds + 1, connections=32)
        proc.wait(60)
    return out


def resilience() -> dict[str, Any]:
    """Against the sandbox: an upstream that hangs, and one that answers every call 429."""
    facts: dict[str, Any] = {}
    with sandbox("--delay", "60") as hung, gateway(hung) as (gw, _):
        began = time.monotonic()
        facts["hang_status"] = fetch(
            f"{gw}/api/v1/customer/1001", {"Authorization": KEY}, None, 30
        )[0]
        facts["hang_seconds"] = time.monotonic() - began
    with sandbox("--status", "429", "--retry-after", "1") as limited, gateway(limited) as (gw, _):
        # Long enough for answers that wait out Retry-After, and for the budget to run out.
        facts["storm"] = wrk(gw, (FIND,), seconds=10, connections=16)
        facts["storm_attempts"] = metric(gw, "crm_gateway_upstream_attempts_total", status="429")
        facts["storm_requests"] = metric(
            gw, "crm_gateway_requests_total", operation="find_customer"
        )
    return facts


def metric(url: str, name: str, **labels: str) -> float:
    text = fetch(f"{url}/metrics")[1].decode()
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and all(w in line for w in want)
    )


def main() -> int:
    facts: dict[str, Any] = {"load_before": os.getloadavg(), "runs": RUNS, "seconds": SECONDS}
    with tempfile.TemporaryDirectory(prefix="crm-gateway-bench-") as tmp:
        root = Path(tmp)
        with servers(root) as all_servers:
            check_answers(all_servers)
            results = series(all_servers)
            gw1, gw2, ref = all_servers[:3]
            facts["soak"] = {s.name: soak(s) for s in (gw1, gw2)}
            facts["reference_rss_mb"] = rss_mb(ref.proc.pid)
            facts["reference_served"] = ref.served
            if PROFILE:
                facts["flames"] = [profile(gw1, "gateway"), profile(ref, "reference")]
        facts["unexpected"] = unexpected(root)
    facts.update(resilience())
    facts["load_after"] = os.getloadavg()
    write(results, facts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
