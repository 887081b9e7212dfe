"""Load from wrk: the routes the bench drives, one wrk run, and what it measured."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any

from procs import KEY


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    body: dict[str, Any] | None = None
    reference: bool = False  # the aiohttp reference serves it
    nginx: bool = True  # the front nginx serves it

    def lua(self) -> str:
        """A wrk request for this route, as the arguments of `wrk.format`."""
        headers = {"Authorization": KEY, "X-API-Key": KEY}  # Khoros's key; Hybrid Chat's
        if self.body is not None:
            headers["Content-Type"] = "application/json"
        table = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
        body = json.dumps(json.dumps(self.body)) if self.body is not None else "nil"
        return f'"{self.method}", "{self.path}", {{{table}}}, {body}'


FIND = Route("find customer", "GET", "/api/v1/customer/1001", reference=True)
SEARCH = Route("search", "POST", "/api/v1/customers", {"email": "jane@example.com"})
# Three upstream searches a request (email, twitter handle, name); no phone number given. The
# handle's network is the profile URL's (a screen name alone names none).
BEST = Route(
    "best match",
    "POST",
    "/api/v1/customer/bestmatch",
    {"displayName": "Jane Doe", "screenName": "@janedoe", "email": "jane@example.com",
     "profileUrl": "https://twitter.com/janedoe"},
    nginx=False,
)  # fmt: skip
META = Route("meta (cached)", "GET", "/api/v1/meta/object/customer", reference=True)
LABEL = Route("/label (cached)", "GET", "/label", reference=True)
ROUTES = (FIND, SEARCH, BEST, META, LABEL)

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def wrk(
    base: str, routes: tuple[Route, ...], *, seconds: float, connections: int
) -> dict[str, float]:
    """One wrk run (one thread) of `routes` in turn against `base`: requests/s, p50, p99 and
    the slowest answer (ms), how many requests, how many were not 2xx or timed out."""
    if len(routes) == 1:  # one request, formatted once by wrk
        lua = f"local r = {{{routes[0].lua()}}}\n"
        lua += "wrk.method, wrk.path, wrk.headers, wrk.body = r[1], r[2], r[3], r[4]\n"
    else:  # the routes in turn, one per request
        requests = ", ".join(f"wrk.format({r.lua()})" for r in routes)
        lua = f"local requests = {{{requests}}}\nlocal n = 0\n"
        lua += "function request() n = n % #requests + 1; return requests[n] end\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua)
    duration = max(1, round(seconds))
    try:
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s"]
        out = subprocess.run(
            [*command, "--latency", "-s", script.name, base],
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 30,
        ).stdout
    finally:
        os.unlink(script.name)
    return parse(out)


def parse(out: str) -> dict[str, float]:
    def find(pattern: str) -> re.Match[str]:
        m = re.search(pattern, out, re.M)
        if m is None:
            raise ValueError(f"wrk printed no {pattern!r}:\n{out}")
        return m

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
        "p50": _ms(*find(r"^\s+50%\s+([\d.]+)(us|ms|s)\s*$").groups()),
        "p99": _ms(*find(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$").groups()),
        "max_ms": _ms(*find(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)").groups()),
        "requests": int(find(r"(\d+) requests in").group(1)),
        "non2xx": int(bad.group(1)) if bad else 0,
        "errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }
