"""App wiring: config and mapping in, an aiohttp application out."""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web
from cachetools import TTLCache

from gateway import (
    admin,
    deadline,
    expertflow,
    health,
    jsonio,
    khoros,
    logs,
    metrics,
    openapi,
    reloading,
    runtime,
)
from gateway.body import MAX_BODY_BYTES
from gateway.config import Config, Secret, secrets_of
from gateway.errors import (
    DeadlineExceeded,
    GatewayError,
    NotFound,
    TooManyFailures,
    Unauthorized,
    for_status,
)
from gateway.fleet import state as fleet_state
from gateway.fleet.state import Fleet
from gateway.mapping.model import MappingSpec
from gateway.mapping.spec import load_mapping
from gateway.text import is_text

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def authorized(header: str | None, keys: tuple[Secret, ...]) -> bool:
    """The header is a configured key, or ``Bearer <key>``. Every key is compared, in
    constant time, so timing tells nothing about which part was wrong."""
    if not header or not is_text(header):
        return False
    given = header.encode()
    bearer = header[7:].strip().encode() if header[:7].lower() == "bearer " else b""
    ok = False
    for key in keys:
        secret = key.reveal().encode()
        ok |= hmac.compare_digest(given, secret) | hmac.compare_digest(bearer, secret)
    return ok


# handler -> (operation name for logs and budgets, who may call it)
_ROUTES: dict[Any, tuple[str, str]] = {
    **{handler: (op, "khoros") for _, _, handler, op in khoros.ROUTES},
    expertflow.customer: ("customer_by_phone", "expertflow"),
    expertflow.labels: ("labels", "expertflow"),
    admin.purge_caches: ("purge_caches", "admin"),
}


class FailureLimit:
    """Failed authentications per client address in the last minute (bounded memory)."""

    def __init__(self) -> None:
        self._seen: TTLCache[str, list[float]] = TTLCache(maxsize=10_000, ttl=60)

    def blocked(self, address: str, limit: int) -> bool:
        now = time.monotonic()
        recent = [t for t in self._seen.get(address, []) if now - t < 60]
        return limit > 0 and len(recent) >= limit

    def failed(self, address: str) -> None:
        now = time.monotonic()
        self._seen[address] = [t for t in self._seen.get(address, []) if now - t < 60] + [now]


FAILURES: web.AppKey[FailureLimit] = web.AppKey("auth_failures", FailureLimit)


def header(request: web.Request, name: str) -> str | None:
    """A request header as text. aiohttp keeps bytes that are not UTF-8 as lone surrogates;
    such a value is treated as absent (so a key in it is missing: 401, never a 500)."""
    value = request.headers.get(name)
    return value if value is None or is_text(value) else None


def _check_access(request: web.Request, config: Config, realm: str) -> None:
    address = request.remote or "unknown"
    failures = request.app[FAILURES]
    if failures.blocked(address, config.auth.max_failures_per_minute):
        raise TooManyFailures(headers={"Retry-After": "60"})
    try:
        _check_key(request, config, realm)
    except Unauthorized:
        failures.failed(address)
        raise


def _check_key(request: web.Request, config: Config, realm: str) -> None:
    if realm == "khoros":
        ok = authorized(header(request, "Authorization"), config.auth.api_keys)
    elif realm == "expertflow":
        # A phone number reveals a person: a key is needed unless the operator opened these
        # endpoints on purpose (docs/behaviour.md §2.4). No keys and not open: always 401.
        given = header(request, "X-API-Key") or request.query.get("api_key")
        ok = config.expertflow.allow_anonymous or authorized(given, config.expertflow.api_keys)
    else:
        if config.admin.api_key is None:
            raise NotFound("No such endpoint.")
        ok = authorized(header(request, "Authorization"), (config.admin.api_key,))
    if not ok:
        raise Unauthorized()


@web.middleware
async def _serve(request: web.Request, handler: khoros.Handler) -> web.StreamResponse:
    """Request id, auth, budget, error bodies and the request's log line, in one place."""
    config = reloading.pin(request).config
    given_id = request.headers.get("X-Request-Id", "")
    request_id = given_id if _REQUEST_ID.match(given_id) else os.urandom(12).hex()
    operation, realm = _ROUTES.get(request.match_info.handler, (None, ""))
    structlog.contextvars.bind_contextvars(request_id=request_id)
    stats = logs.start_request()
    started = time.perf_counter()
    budget_left: float | None = None
    seconds = config.deadlines.budget("meta" if operation == "meta" else "default")
    response: web.StreamResponse
    try:
        if operation is None:
            response = await handler(request)
        else:
            _check_access(request, config, realm)
            with deadline.budget(seconds, config.deadlines.margin_seconds) as budget:
                try:
                    async with asyncio.timeout(seconds):
                        response = await handler(request)
                except TimeoutError:
                    raise DeadlineExceeded(detail="request budget ran out") from None
                finally:
                    budget_left = budget.remaining()
    except GatewayError as exc:
        response = _error(exc, request_id)
    except web.HTTPException as exc:
        # The framework's own answers (unknown path, method, body size): the same error body.
        response = _error(_framework_error(exc), request_id)
    except Exception:
        logs.get().exception("unhandled_error", operation=operation)
        response = _error(GatewayError(), request_id)
    response.headers["X-Request-Id"] = request_id
    admin_key = config.admin.api_key
    if admin_key and authorized(header(request, "X-Debug-Trace"), (admin_key,)):
        response.headers["X-Debug-Trace"] = _trace(stats)
    elapsed = time.perf_counter() - started
    if operation is not None:
        metrics.REQUESTS.labels(operation, str(response.status)).inc()
        metrics.LATENCY.labels(operation).observe(elapsed)
        if response.status == 504:
            metrics.BUDGET_EXHAUSTED.labels(operation).inc()
    route = request.match_info.route.resource
    logs.get().info(
        "request",
        operation=operation,
        method=request.method,
        route=route.canonical if route is not None else None,
        status=response.status,
        duration_ms=round(elapsed * 1000, 1),
        upstream_calls=stats.upstream_calls,
        cache=stats.cache_status,
        budget_left_ms=None if budget_left is None else max(0, round(budget_left * 1000)),
        company_id=header(request, "x-sf-company-id"),
        initiative=header(request, "x-sf-initiative"),
        agent_email=header(request, "x-sf-user-email") or header(request, "x-sf-email"),
    )
    structlog.contextvars.unbind_contextvars("request_id")
    return response


_TRACED = ("method", "path", "url", "attempt", "status", "retry_reason", "duration_ms")


def _trace(stats: logs.RequestStats) -> str:
    """The upstream calls of this request, for an admin debugging it: no headers, no bodies."""
    calls = [{k: c.get(k) for k in _TRACED} for c in stats.calls]
    return json.dumps({"upstream_calls": calls, "cache": stats.cache}, separators=(",", ":"))


def _framework_error(exc: web.HTTPException) -> GatewayError:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allow = ",".join(sorted(exc.allowed_methods))
        return for_status(405, "This path does not serve that method.", {"Allow": allow})
    if isinstance(exc, web.HTTPNotFound):
        return for_status(404, "No such endpoint.")
    return for_status(exc.status)


def _error(exc: GatewayError, request_id: str) -> web.Response:
    if exc.detail or exc.status >= 500:
        logs.get().warning("request_failed", error=exc.error, status=exc.status, detail=exc.detail)
    return jsonio.response(exc.body(request_id), status=exc.status, headers=exc.headers)


def create_app(
    config: Config, mapping: MappingSpec | None = None, *, fleet: Fleet | None = None
) -> web.Application:
    """``fleet``: what this process shares with the others (default: as the config says)."""
    logs.configure(
        config.logging.level,
        config.logging.format,
        secrets=secrets_of(config),
        pii=config.logging.pii,
    )
    fleet = fleet or fleet_state.build(config)
    mapping = mapping or load_mapping(config.upstream.mapping)
    holder = reloading.Holder(runtime.build(config, mapping, fleet=fleet), fleet)
    app = web.Application(middlewares=[_serve], client_max_size=MAX_BODY_BYTES)
    app[reloading.HOLDER] = holder
    app[fleet_state.FLEET] = fleet
    app[FAILURES] = FailureLimit()
    app[health.LAST_PROBE] = health.LastProbe()
    base = config.server.base_path
    for method, path, handler, _ in khoros.ROUTES:
        app.router.add_route(method, base + path, handler)
    app.router.add_get(config.expertflow.path_prefix + "/customer", expertflow.customer)
    app.router.add_get(config.expertflow.path_prefix + "/label", expertflow.labels)
    app.router.add_post("/admin/cache/purge", admin.purge_caches)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", metrics.metrics)
    app.router.add_get("/openapi.json", openapi.openapi)

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        await holder.current.upstream.start()
        await fleet.start(lambda names: holder.current.caches.purge(names))
        watcher = None
        every = config.server.watch_seconds
        if every > 0:
            watcher = asyncio.create_task(reloading.watch(holder, config.file, every))
        yield
        if watcher is not None:
            watcher.cancel()
        await holder.close()
        await fleet.close()

    app.cleanup_ctx.append(upstream_session)
    return app
