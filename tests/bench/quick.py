"""A quick loop for working on speed (not part of `make bench`): the upstream nginx, the gateway
(1 worker, or `--workers 2`) and the aiohttp reference, and wrk driving one route at a time for
a few seconds; prints the CPU µs a request each server spent (from /proc, which other work on a
shared machine hardly moves) and requests a second. `--profile` adds a py-spy profile of the
gateway worker per route, as collapsed stacks, with the functions that hold most samples
(inclusive) printed.

    .venv/bin/python tests/bench/quick.py [--routes find,meta,label] [--seconds 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from load import BEST, FIND, LABEL, META, SEARCH, Route, wrk
from procs import (
    EMAIL,
    KEY,
    ROOT,
    TOKEN,
    free_port,
    gateway,
    nginx,
    reference,
    started,
    wait_http,
    worker_pids,
)  # fmt: skip
from run import _keep_cached_answers
from upstream import upstream_conf, write_static
from usage import cpu_seconds


@contextmanager
def baseline(upstream: str, ref: str, root: Path, workers: int) -> Iterator[tuple[str, list[int]]]:
    """The gateway as of git `ref` (its files extracted apart), run beside this one."""
    tree = root / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "ZENDESK_URL": upstream,
        "ZENDESK_EMAIL": EMAIL,
        "ZENDESK_API_TOKEN": TOKEN,
        "GATEWAY_API_KEYS": KEY,
        "EXPERTFLOW_API_KEYS": KEY,
    }
    cmd = [sys.executable, "-m", "gateway", "serve", "--config", "config.example.yaml"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(
        cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz")
        yield url, worker_pids(proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)


ROUTES = {"find": FIND, "search": SEARCH, "best": BEST, "meta": META, "label": LABEL}


def _split(pids: list[int]) -> tuple[int, int]:
    """User and system ticks of the processes."""
    user = system = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        user, system = user + int(fields[11]), system + int(fields[12])
    return user, system


def measure(url: str, pids: list[int], route: Route, seconds: float, c: int) -> tuple[float, float]:
    before, split = cpu_seconds(pids), _split(pids)
    result = wrk(url, (route,), seconds=seconds, connections=c)
    used = cpu_seconds(pids) - before
    user, system = (a - b for a, b in zip(_split(pids), split, strict=True))
    if os.environ.get("QUICK_SPLIT"):
        n = max(result["requests"], 1) / 1e6 * os.sysconf("SC_CLK_TCK")
        print(f"    user {user / n:.0f} µs, system {system / n:.0f} µs a request", flush=True)
    if result["non2xx"] or result["errors"]:
        print(f"  ! {result['non2xx']} non-2xx, {result['errors']} errors", file=sys.stderr)
    if os.environ.get("QUICK_P50"):
        print(f"    p50 {result['p50']:.3f} ms, p99 {result['p99']:.3f} ms", flush=True)
    return used * 1e6 / max(result["requests"], 1), result["rps"]


def top(collapsed: Path, n: int = 40) -> None:
    """Inclusive and self shares of the functions in py-spy's collapsed stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        k = int(count)
        total += k
        for f in set(frames):
            inclusive[f] += k
        own[frames[-1]] += k
    print(f"  {total} samples; inclusive:")
    for f, k in inclusive.most_common(n):
        print(f"  {100 * k / total:5.1f}%  {f}")
    print("  self:")
    for f, k in own.most_common(25):
        print(f"  {100 * k / total:5.1f}%  {f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--routes", default="find,meta,label")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--baseline", help="a git ref: its gateway measured in turn with this one")
    args = parser.parse_args()
    routes = [ROUTES[r] for r in args.routes.split(",")]
    with tempfile.TemporaryDirectory(prefix="crm-gateway-quick-") as tmp:
        root = Path(tmp)
        port = free_port()
        write_static(root, port)
        up = f"http://127.0.0.1:{port}"
        with (
            nginx(upstream_conf(root, port), f"{up}/api/v2/user_fields"),
            gateway(up, workers=args.workers) as (gw, proc),
        ):
            _keep_cached_answers(gw, root / "cached")
            with reference(up, root / "cached") as (ref, ref_proc), ExitStack() as stack:
                servers = [("gateway", gw, worker_pids(proc))]
                if args.baseline:
                    base = stack.enter_context(baseline(up, args.baseline, root, args.workers))
                    servers.append(("baseline", *base))
                if not args.no_reference:
                    servers.append(("reference", ref, [ref_proc.pid]))
                for route in routes:
                    serving = [s for s in servers if s[0] != "reference" or route.reference]
                    for _, url, pids in serving:
                        measure(url, pids, route, 1, args.connections)  # warm up
                    seen: dict[str, list[tuple[float, float]]] = {}
                    for _ in range(args.runs):  # in turn, so that load falls on all alike
                        for name, url, pids in serving:
                            got = measure(url, pids, route, args.seconds, args.connections)
                            seen.setdefault(name, []).append(got)
                    for name, results in seen.items():
                        cpu = [c for c, _ in results]
                        rps = statistics.median(r for _, r in results)
                        print(
                            f"{route.name:16} {name:9} cpu µs/req {statistics.median(cpu):6.1f} "
                            f"(runs {', '.join(f'{x:.0f}' for x in cpu)})  req/s {rps:8.0f}",
                            flush=True,
                        )
                if args.profile:
                    spy = str(Path(sys.executable).with_name("py-spy"))
                    for route in routes:
                        out = root / f"{route.name.split()[0].strip('/')}.txt"
                        pid = str(worker_pids(proc)[0])
                        # Every thread (--gil draws the loop's socket writes far larger than
                        # their CPU time); the log writer's thread shows apart, mostly asleep.
                        cmd = [spy, "record", "--function", "--format", "raw", "-r", "300"]
                        cmd += ["-o", str(out), "-p", pid, "-d", "8"]
                        with started(*cmd) as spy_proc:
                            time.sleep(1)
                            wrk(gw, (route,), seconds=9, connections=args.connections)
                            spy_proc.wait(60)
                        print(f"profile of {route.name}:")
                        top(out)
                        keep = Path("/tmp") / f"quick-{route.name.split()[0].strip('/')}.txt"
                        keep.write_text(out.read_text())


if __name__ == "__main__":
    main()
