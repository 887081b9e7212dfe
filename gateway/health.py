"""Health for orchestrators: `/healthz` (the process answers) and `/readyz` (config loaded and
the upstream reachable through a real resource the mapping names, with our credentials)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from gateway import deadline, jsonio, reloading
from gateway.errors import GatewayError

READY_BUDGET = 3.0  # seconds a readiness probe may take
READY_TTL = 2.0  # probes closer together than this share one upstream call


class LastProbe:
    """The latest readiness answer of one app: (when, status, body)."""

    def __init__(self) -> None:
        self.answer: tuple[float, int, dict[str, Any]] | None = None


LAST_PROBE: web.AppKey[LastProbe] = web.AppKey("last_probe", LastProbe)


async def healthz(request: web.Request) -> web.Response:
    return jsonio.response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    last = request.app[LAST_PROBE]
    cached = last.answer
    if cached and time.monotonic() - cached[0] < READY_TTL:
        return jsonio.response(cached[2], status=cached[1])
    live = reloading.of(request)
    engine = live.engine
    body: dict[str, Any] = {"upstream": engine.mapping.name, "mapping": engine.mapping.file}
    probe = engine.mapping.readiness
    status = 200
    if probe is None:
        body["status"] = "ready"
        body["note"] = "the mapping names no readiness request"
    else:
        try:
            with deadline.budget(READY_BUDGET, 0.1):
                await engine.fetch(probe, engine.base_ctx)
            body["status"] = "ready"
        except GatewayError as exc:
            status = 503
            body.update(status="not ready", reason=exc.error, detail=exc.detail or exc.message)
    # Open: the probe above failed fast; half open: it was (or waits behind) the one probe.
    body["circuit"] = live.upstream.breaker.state
    last.answer = (time.monotonic(), status, body)
    return jsonio.response(body, status=status)
