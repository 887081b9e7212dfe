"""What orchestrators and scrapers read: `/healthz` (the process answers), `/readyz` (this
process can serve: started, not draining, its Redis reached; with `?upstream=1`, the CRM too,
through a real resource the mapping names, with our credentials) and `/metrics`
(docs/behaviour.md §6.1)."""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as mp

from gateway import deadline, jsonio
from gateway.errors import BadRequest, GatewayError
from gateway.fleet.redis import Unavailable
from gateway.operation import Args
from gateway.runtime import Runtime

READY_BUDGET = 3.0  # seconds a readiness probe of the CRM may take
ASK_UPSTREAM = {"1": True, "true": True, "0": False, "false": False}  # ?upstream=


async def healthz(live: Runtime, args: Args) -> Any:
    return {"status": "ok"}


async def readyz(live: Runtime, args: Args) -> web.Response:
    """The gateway's own readiness; the CRM's only when asked: a CRM incident must not take
    every replica out of the load balancer at once (Khoros would get connection errors rather
    than the gateway's JSON 503)."""
    given = args.query.get("upstream", "0")
    if given not in ASK_UPSTREAM:
        raise BadRequest("upstream must be 1 (ask the CRM too) or 0.")
    body: dict[str, Any] = {
        "status": "ready",
        "state": live.lifecycle.state,
        "shared_state": await _shared_state(live),
        "upstream": live.mapping.name,
        "mapping": str(live.mapping.file),
    }
    problem = _own_problem(live, body)
    if ASK_UPSTREAM[given]:
        # Probes closer together than the cache's time to live share one upstream call.
        status, crm = await live.readiness.get("readiness", lambda: _probe(live))
        body["crm"] = crm["status"]
        if "note" in crm:
            body["note"] = crm["note"]
        if problem is None and status != 200:
            problem = crm["reason"], crm["detail"]
    # Open: requests to the CRM fail fast (503); half open: one probe goes through.
    body["circuit"] = live.upstream.breaker.state
    if problem is not None:
        body.update(status="not ready", reason=problem[0], detail=problem[1])
    return jsonio.response(body, status=200 if problem is None else 503)


def _own_problem(live: Runtime, body: dict[str, Any]) -> tuple[str, str] | None:
    """Why this process should get no traffic, if it should not: it answers, so it is
    listening, and its config is loaded (it serves the one the Runtime was made of)."""
    life = live.lifecycle
    if life.draining:
        return "Draining", "stopping: requests in flight finish, new ones belong elsewhere"
    if not life.started:
        return "Starting", "the upstream client and the fleet are not started yet"
    if body["shared_state"] == "down" and not life.shared_state_reached:
        return "SharedStateUnavailable", "Redis has not answered since start-up"
    return None


async def _shared_state(live: Runtime) -> str:
    """Redis as this process reaches it: `none` (not configured), `up` or `down`."""
    redis = live.fleet.redis if live.fleet is not None else None
    if redis is None:
        return "none"
    try:
        await redis.run("ping", lambda r: r.ping())
    except Unavailable:
        return "down"
    live.lifecycle.shared_state_reached = True
    return "up"


async def _probe(live: Runtime) -> tuple[int, dict[str, Any]]:
    """The CRM answers the mapping's `readiness` request with our credentials (or not)."""
    engine = live.engine
    probe = engine.mapping.readiness
    if probe is None:
        return 200, {"status": "ready", "note": "the mapping names no readiness request"}
    try:
        with deadline.budget(READY_BUDGET, 0.1):
            await engine.fetch(probe, engine.base_ctx)
    except GatewayError as exc:
        live.upstream.breaker.saw(False)
        return 503, {
            "status": "not ready",
            "reason": exc.error,
            "detail": exc.detail or exc.message,
        }
    live.upstream.breaker.saw(True)
    return 200, {"status": "ready"}


async def metrics(live: Runtime, args: Args) -> web.Response:
    """Prometheus text; with several workers, the sum of theirs (multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
