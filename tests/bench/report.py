"""The bench's report: a markdown table (figures, ratios, the targets met or missed) and a plot,
both into tests/bench/results/."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from load import ROUTES

RESULTS = Path(__file__).resolve().parent / "results"
SERVERS = ("gateway 1w", "gateway 2w", "aiohttp reference", "nginx")
COLORS = ("#3b7dd8", "#1f4e9c", "#d8793b", "#7a7a7a")

Results = dict[tuple[str, str, int], dict[str, float]]


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "—"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _rps(results: Results, route: str, server: str) -> float | None:
    cell = results.get((route, server, 32))
    return cell["rps"] if cell else None


def _p50_1(results: Results, route: str, server: str) -> float | None:
    cell = results.get((route, server, 1))
    return cell["p50"] if cell else None


def figures(results: Results) -> list[str]:
    lines = [
        "| route | server | req/s at 32 | p50 / p99 at 32, ms | p50 / p99 at 1, ms |",
        "|---|---|---:|---:|---:|",
    ]
    for route in ROUTES:
        for server in SERVERS:
            hi, lo = results.get((route.name, server, 32)), results.get((route.name, server, 1))
            if hi is None or lo is None:
                continue
            lines.append(
                f"| {route.name} | {server} | {hi['rps']:,.0f} | {hi['p50']:.2f} / "
                f"{hi['p99']:.2f} | {lo['p50']:.3f} / {lo['p99']:.3f} |"
            )
    return lines


def ratios(results: Results) -> list[str]:
    lines = [
        "| route | gateway 1w / reference | gateway 1w / nginx | 2 workers / 1 worker "
        "| p50 at 1 connection, gateway 1w minus reference |",
        "|---|---:|---:|---:|---:|",
    ]
    for route in ROUTES:
        gw, ref = _rps(results, route.name, "gateway 1w"), _rps(results, route.name, SERVERS[2])
        gw2, ngx = _rps(results, route.name, "gateway 2w"), _rps(results, route.name, "nginx")
        p_gw, p_ref = (
            _p50_1(results, route.name, "gateway 1w"),
            _p50_1(results, route.name, SERVERS[2]),
        )
        added = f"{p_gw - p_ref:+.3f} ms" if p_gw is not None and p_ref is not None else "—"
        cells = (route.name, _ratio(gw, ref), _ratio(gw, ngx), _ratio(gw2, gw), added)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def targets(results: Results, facts: dict[str, Any]) -> list[str]:
    find, ref = "find customer", SERVERS[2]
    lines = ["| target | figure | wanted | |", "|---|---:|---:|---|"]

    def row(name: str, value: float, shown: str, wanted: str, ok: bool) -> None:
        lines.append(f"| {name} | {shown} | {wanted} | {_verdict(ok and value == value)} |")

    share = (_rps(results, find, "gateway 1w") or 0) / (_rps(results, find, ref) or 1)
    row(
        "find customer, 1 worker: gateway / reference", share, f"{share:.2f}", "≥ 0.8", share >= 0.8
    )
    added = (_p50_1(results, find, "gateway 1w") or 0) - (_p50_1(results, find, ref) or 0)
    row(
        "find customer, p50 added at 1 connection",
        added,
        f"{added:.3f} ms",
        "≤ 0.3 ms",
        added <= 0.3,
    )
    for route in ("meta (cached)", "/label (cached)"):
        share = (_rps(results, route, "gateway 1w") or 0) / (_rps(results, route, ref) or 1)
        row(f"{route}: gateway / aiohttp handler", share, f"{share:.2f}", "≥ 0.8", share >= 0.8)
    scale = (_rps(results, find, "gateway 2w") or 0) / (_rps(results, find, "gateway 1w") or 1)
    row("find customer: 2 workers / 1 worker", scale, f"{scale:.2f}", "≥ 1.8", scale >= 1.8)
    for name, soak in facts["soak"].items():
        rss = soak["rss_mb"]
        row(
            f"RSS per worker, {name}, after {soak['per_worker']:,.0f} requests a worker",
            rss,
            f"{rss:.0f} MB",
            "≤ 100 MB",
            rss <= 100,
        )
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
            (n + (i - 1.5) * height, _rps(results, name, server), _p50_1(results, name, server))
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
