"""The bench's report: a markdown table (figures, ratios, the targets met or missed) and a plot,
both into tests/bench/results/."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from load import FIND as FIND_ROUTE
from load import LABEL, META, ROUTES

RESULTS = Path(__file__).resolve().parent / "results"
SERVERS = ("gateway 1w", "gateway 2w", "aiohttp reference", "nginx")
GW, GW2, REF, NGX = SERVERS
FIND = FIND_ROUTE.name
COLORS = ("#3b7dd8", "#1f4e9c", "#d8793b", "#7a7a7a")

Results = dict[tuple[str, str, int], dict[str, float]]


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _get(
    results: Results, route: str, server: str, key: str, connections: int = 32
) -> float | None:
    cell = results.get((route, server, connections))
    return cell[key] if cell else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "—"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def figures(results: Results) -> list[str]:
    lines = [
        "| route | server | req/s at 32 | CPU µs a request at 32 "
        "| cores busy at 32: server, wrk, upstream, rest | p50 / p99 at 32, ms "
        "| p50 / p99 at 1, ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for route in ROUTES:
        for server in SERVERS:
            hi, lo = results.get((route.name, server, 32)), results.get((route.name, server, 1))
            if hi is None or lo is None:
                continue
            lines.append(
                f"| {route.name} | {server} | {hi['rps']:,.0f} | {hi['cpu_us']:,.0f} "
                f"| {hi['cores_server']:.2f}, {hi['cores_wrk']:.2f}, {hi['cores_upstream']:.2f}, "
                f"{hi['cores_rest']:.2f} | {hi['p50']:.2f} / {hi['p99']:.2f} "
                f"| {lo['p50']:.3f} / {lo['p99']:.3f} |"
            )
    return lines


def ratios(results: Results) -> list[str]:
    """Throughput ratios, and the same by CPU time a request (the other's over the gateway's),
    which the machine's other work hardly moves."""
    lines = [
        "| route | gateway 1w / reference: req/s, CPU | gateway 1w / nginx: req/s, CPU "
        "| 2 workers / 1 worker | p50 at 1 connection, gateway 1w minus reference |",
        "|---|---:|---:|---:|---:|",
    ]
    for route in (r.name for r in ROUTES):

        def both(other: str, route: str = route) -> str:
            rps = _ratio(_get(results, route, GW, "rps"), _get(results, route, other, "rps"))
            cpu = _ratio(_get(results, route, other, "cpu_us"), _get(results, route, GW, "cpu_us"))
            return f"{rps}, {cpu}" if rps != "—" else "—"

        p_gw, p_ref = _get(results, route, GW, "p50", 1), _get(results, route, REF, "p50", 1)
        added = f"{p_gw - p_ref:+.3f} ms" if p_gw is not None and p_ref is not None else "—"
        scale = _ratio(_get(results, route, GW2, "rps"), _get(results, route, GW, "rps"))
        lines.append("| " + " | ".join((route, both(REF), both(NGX), scale, added)) + " |")
    return lines


def targets(results: Results, facts: dict[str, Any]) -> list[str]:
    lines = ["| target | figure | wanted | |", "|---|---:|---:|---|"]

    def row(name: str, value: float | None, shown: str, wanted: float, at_least: bool) -> None:
        ok = value is not None and (value >= wanted if at_least else value <= wanted)
        lines.append(
            f"| {name} | {shown} | {'≥' if at_least else '≤'} {wanted:g} | {_verdict(ok)} |"
        )

    def share(route: str, other: str) -> None:
        rps = _get(results, route, GW, "rps") or 0
        value = rps / (_get(results, route, other, "rps") or 1)
        by_cpu = _ratio(_get(results, route, other, "cpu_us"), _get(results, route, GW, "cpu_us"))
        name = f"{route}, 1 worker: gateway / {'reference' if route == FIND else 'aiohttp handler'}"
        row(name, value, f"{value:.2f} (by CPU a request: {by_cpu})", 0.8, True)

    share(FIND, REF)
    p_gw, p_ref = _get(results, FIND, GW, "p50", 1), _get(results, FIND, REF, "p50", 1)
    added = p_gw - p_ref if p_gw is not None and p_ref is not None else None
    row(f"{FIND}, p50 added at 1 connection, ms", added, f"{added or 0:.3f}", 0.3, False)
    share(META.name, REF)
    share(LABEL.name, REF)
    scale = (_get(results, FIND, GW2, "rps") or 0) / (_get(results, FIND, GW, "rps") or 1)
    row(f"{FIND}: 2 workers / 1 worker", scale, f"{scale:.2f}", 1.8, True)
    for name, soak in facts["soak"].items():
        rss = soak["rss_mb"]
        label = f"RSS per worker, MB: {name}, after {soak['per_worker']:,.0f} requests a worker"
        row(label, rss, f"{rss:.0f}", 100, False)
    return lines


def resilience(facts: dict[str, Any]) -> list[str]:
    storm = facts["storm"]
    attempts = facts["storm_attempts"] / max(facts["storm_requests"], 1)
    return [
        "| when the upstream (the sandbox) misbehaves | figure | wanted |",
        "|---|---:|---:|",
        f"| it hangs: the answer ({facts['hang_status']}) comes after | "
        f"{facts['hang_seconds']:.2f} s | at the 7.2 s budget, never past it |",
        f"| 429 storm (Retry-After: 1): answers, slowest | {storm['requests']:,}, "
        f"{storm['max_ms'] / 1000:.2f} s | inside 7.2 s |",
        f"| 429 storm: upstream attempts per request | {attempts:.2f} | bounded (≤ 3) |",
    ]


def write(results: Results, facts: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    before, after = facts["load_before"][0], facts["load_after"][0]
    bad = sum(int(r["non2xx"]) for r in results.values())
    bad += sum(int(s["non2xx"]) for s in facts["soak"].values())
    odd = facts["unexpected"]
    lines = [
        f"Machine: {os.cpu_count()} cores ({_cpu()}), Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d')}; load average {before:.1f} before the run, {after:.1f} "
        f"after. wrk -t1 at 1 and 32 connections; median of {facts['runs']} runs of "
        f"{facts['seconds']:g} s, the servers taking turns. Answers other than 2xx: {bad} to wrk, "
        f"{odd['upstream']} from the upstream nginx, {odd['front']} from the front nginx.",
        "",
        *figures(results),
        "",
        *ratios(results),
        "",
        *targets(results, facts),
        "",
        f"The aiohttp reference's RSS after {facts['reference_served']:,} requests: "
        f"{facts['reference_rss_mb']:.0f} MB.",
        "",
        *resilience(facts),
    ]
    table = "\n".join(lines)
    (RESULTS / "latest.md").write_text(table + "\n")
    plot(results, RESULTS / "latest.png")
    print(table)
    written = [RESULTS / "latest.md", RESULTS / "latest.png", *facts.get("flames", [])]
    print("\nwritten: " + ", ".join(str(p) for p in written))


def plot(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.name for r in ROUTES]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    height = 0.8 / len(SERVERS)
    for i, (server, color) in enumerate(zip(SERVERS, COLORS, strict=True)):
        served = [
            (
                n + (i - 1.5) * height,
                _get(results, name, server, "rps"),
                _get(results, name, server, "p50", 1),
            )
            for n, name in enumerate(names)
            if (name, server, 32) in results
        ]
        ys = [y for y, _, _ in served]
        left.barh(ys, [rps for _, rps, _ in served], height, color=color, label=server)
        right.barh(ys, [p50 for _, _, p50 in served], height, color=color)
    left.set_xscale("log")
    left.set_xlabel("requests/s at 32 connections, log scale (more is better)")
    right.set_xlabel("p50 latency at 1 connection, ms (less is better)")
    left.set_yticks(range(len(names)), names)
    left.invert_yaxis()
    fig.legend(*left.get_legend_handles_labels(), loc="lower center", ncol=len(SERVERS))
    fig.suptitle("crm-gateway beside an aiohttp reference and nginx, one run, static upstream")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
