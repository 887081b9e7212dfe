"""Where the machine's CPU went during one measurement: the server measured, wrk, the upstream,
and the rest (other work on a shared machine). Requests a second move with the rest; CPU time
a request hardly does."""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes have used (all their threads)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / TICK


def machine_busy() -> float:
    """CPU seconds the machine has been busy, all cores together (idle and iowait are not)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def _children() -> float:
    """CPU time of the child processes this one has waited for: wrk's, once it has ended."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


@dataclass(frozen=True)
class Usage:
    at: float
    server: float
    wrk: float
    upstream: float
    machine: float


def usage(server: list[int], upstream: list[int]) -> Usage:
    return Usage(
        time.monotonic(), cpu_seconds(server), _children(), cpu_seconds(upstream), machine_busy()
    )


def spent(before: Usage, after: Usage, requests: int) -> dict[str, float]:
    """The server's CPU µs a request, and the cores each party kept busy meanwhile."""
    wall = max(after.at - before.at, 1e-9)
    cores = {
        part: (getattr(after, part) - getattr(before, part)) / wall
        for part in ("server", "wrk", "upstream", "machine")
    }
    rest = cores["machine"] - cores["server"] - cores["wrk"] - cores["upstream"]
    return {
        "cpu_us": (after.server - before.server) * 1e6 / max(requests, 1),
        "cores_server": cores["server"],
        "cores_wrk": cores["wrk"],
        "cores_upstream": cores["upstream"],
        "cores_rest": max(rest, 0.0),
    }
