"""What orchestrators and scrapers read: `/healthz` (the process answers), `/readyz` (the config
is loaded and the upstream reachable through a real resource the mapping names, with our
credentials) and `/metrics`."""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as mp

from gateway import deadline, jsonio
from gateway.errors import GatewayError
from gateway.operation import Args
from gateway.runtime import Runtime

READY_BUDGET = 3.0  # seconds a readiness probe may take


async def healthz(live: Runtime, args: Args) -> Any:
    return {"status": "ok"}


async def readyz(live: Runtime, args: Args) -> web.Response:
    # Probes closer together than the cache's time to live share one upstream call.
    status, body = await live.readiness.get("readiness", lambda: _probe(live))
    return jsonio.response(body, status=status)


async def _probe(live: Runtime) -> tuple[int, dict[str, Any]]:
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
    return status, body


async def metrics(live: Runtime, args: Args) -> web.Response:
    """Prometheus text; with several workers, the sum of theirs (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
