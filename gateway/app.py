"""App wiring: config and mapping in, an aiohttp application out, routed from the table of
operations (gateway.api); and the middleware every request passes: its id, who may call it,
its budget, error bodies and its log line."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from gateway import access, api, body, deadline, jsonio, logs, metrics, reloading, runtime
from gateway.access import authorized, header
from gateway.body import MAX_BODY_BYTES
from gateway.config import Config, secrets_of
from gateway.errors import DeadlineExceeded, GatewayError, for_status
from gateway.fleet import state as fleet_state
from gateway.fleet.state import Fleet
from gateway.mapping.model import MappingSpec
from gateway.mapping.spec import load_mapping
from gateway.operation import Args, Operation, prefixes
from gateway.tracing import Tracing

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Request ids: 96 random bits from `random` (seeded from os.urandom, and again in a forked
# child). They are not secrets, so no syscall a request: os.urandom lets go of the GIL, and
# the log writer's thread may then keep it a while (~8 µs a request, measured).
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The operations an app serves, by name (its routes are named so).
SERVED: web.AppKey[dict[str, Operation]] = web.AppKey("operations", dict)
TRACING: web.AppKey[Tracing] = web.AppKey("tracing", Tracing)


@web.middleware
async def _serve(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, trace, auth, budget, error bodies and the request's log line, in one place."""
    live = reloading.pin(request)
    config = live.config
    given_id = request.headers.get("X-Request-Id", "")
    request_id = given_id if _REQUEST_ID.match(given_id) else f"{random.getrandbits(96):024x}"
    op = request.app[SERVED].get(request.match_info.route.name or "")
    # What logs, metrics and traces name: the operations of callers (not the probes of the ops
    # realm, nor unknown paths).
    operation = op.name if op is not None and op.realm != "ops" else None
    logs.bind(request_id=request_id)
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else None
    traced = None
    if operation is not None:
        traced = request.app[TRACING].begin(
            request.headers, request.method, route or "", operation, request_id
        )
    if traced is not None:
        logs.bind(trace_id=traced.trace_id)
    stats = logs.start_request()
    started = time.perf_counter()
    try:
        response, budget_left = await _answer(request, handler, op, config, request_id)
    except BaseException:  # cancelled: no answer to log, but the trace must not stay current
        if traced is not None:
            traced.end(None, {})
            logs.unbind("trace_id")
        raise
    response.headers["X-Request-Id"] = request_id
    if live.lifecycle.draining:
        response.force_close()  # a kept-alive connection would outlive the drain: move it now
    admin_key = config.admin.api_key
    if admin_key and authorized(header(request, "X-Debug-Trace"), (admin_key,)):
        response.headers["X-Debug-Trace"] = _trace(stats)
    elapsed = time.perf_counter() - started
    if operation is not None:
        metrics.child(metrics.REQUESTS, operation, str(response.status)).inc()
        metrics.child(metrics.LATENCY, operation).observe(elapsed)
        if response.status == 504:
            metrics.child(metrics.BUDGET_EXHAUSTED, operation).inc()
    budget_left_ms = None if budget_left is None else max(0, round(budget_left * 1000))
    ids: dict[str, str] = {}
    if traced is not None:
        ids["span_id"] = traced.span_id
        done = {"crm_gateway.upstream_calls": stats.upstream_calls}
        if budget_left_ms is not None:
            done["crm_gateway.budget_left_ms"] = budget_left_ms
        traced.end(response.status, done)
    logs.get().info(
        "request",
        operation=operation,
        method=request.method,
        route=route,
        status=response.status,
        duration_ms=round(elapsed * 1000, 1),
        upstream_calls=stats.upstream_calls,
        cache=stats.cache_status,
        budget_left_ms=budget_left_ms,
        company_id=header(request, "x-sf-company-id"),
        initiative=header(request, "x-sf-initiative"),
        agent_email=header(request, "x-sf-user-email") or header(request, "x-sf-email"),
        **ids,
    )
    logs.unbind("request_id", "trace_id")
    return response


async def _answer(
    request: web.Request, handler: Handler, op: Operation | None, config: Config, request_id: str
) -> tuple[web.StreamResponse, float | None]:
    """The response: the handler's, inside the operation's budget, or an error body; and the
    budget left when it ended (None: the operation has none)."""
    budget_left: float | None = None
    try:
        if op is not None:
            access.check(request, config, op.realm)
        if op is None or op.budget is None:
            return await handler(request), None
        seconds = config.deadlines.budget(op.budget)
        with deadline.budget(seconds, config.deadlines.margin_seconds) as budget:
            try:
                async with asyncio.timeout(seconds):
                    response = await handler(request)
            except TimeoutError:
                raise DeadlineExceeded(detail="request budget ran out") from None
            finally:
                budget_left = budget.remaining()
        return response, budget_left
    except GatewayError as exc:
        return _error(exc, request_id), budget_left
    except web.HTTPException as exc:
        # The framework's own answers (unknown path, method, body size): the same error body.
        return _error(_framework_error(exc), request_id), budget_left
    except Exception:
        logs.get().exception("unhandled_error", operation=op.name if op else None)
        return _error(GatewayError(), request_id), budget_left


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


def endpoint(op: Operation) -> Handler:
    """The aiohttp handler of an operation: its request's Args (the body accepted by its
    schema) to its handler, and what that answers to a response."""

    async def serve(request: web.Request) -> web.StreamResponse:
        given = await body.read(request, op.body) if op.body is not None else None
        args = Args(dict(request.match_info), dict(request.query), given)
        result = await op.handler(reloading.of(request), args)
        if isinstance(result, web.StreamResponse):
            return result
        if op.empty is not None and not result:
            return web.Response(status=op.empty)
        return jsonio.response(result, status=op.status)

    return serve


def create_app(
    config: Config,
    mapping: MappingSpec | None = None,
    *,
    fleet: Fleet | None = None,
    tracing: Tracing | None = None,
) -> web.Application:
    """``fleet``: what this process shares with the others (default: as the config says);
    ``tracing``: where spans go (default: as the `OTEL_*` environment says)."""
    logs.configure(
        config.logging.level,
        config.logging.format,
        secrets=secrets_of(config),
        pii=config.logging.pii,
    )
    fleet = fleet or fleet_state.build(config)
    mapping = mapping or load_mapping(config.upstream.mapping)
    holder = reloading.Holder(runtime.build(config, mapping, fleet=fleet))
    app = web.Application(
        middlewares=[_serve],
        client_max_size=MAX_BODY_BYTES,
        # Compressed bodies are read by `body.read`, within the size limit.
        handler_args={"auto_decompress": False},
    )
    app[reloading.HOLDER] = holder
    app[fleet_state.FLEET] = fleet
    app[access.FAILURES] = access.FailureLimit()
    app[SERVED] = {op.name: op for op in api.OPERATIONS}  # as the table is when the app is made
    app[TRACING] = tracing = tracing or Tracing.from_environment()
    served_under = prefixes(config)
    for op in api.OPERATIONS:
        path = served_under[op.realm] + op.path
        if op.method == "GET":  # HEAD too, answered as GET without the body
            app.router.add_get(path, endpoint(op), name=op.name)
        else:
            app.router.add_route(op.method, path, endpoint(op), name=op.name)

    async def upstream_session(app: web.Application) -> AsyncIterator[None]:
        await holder.current.upstream.start()
        await fleet.start(lambda names: holder.current.caches.purge(names))
        watcher = None
        every = config.server.watch_seconds
        if every > 0:
            watcher = asyncio.create_task(reloading.watch(holder, config.file, every))
        holder.current.lifecycle.started = True
        yield
        if watcher is not None:
            watcher.cancel()
        await holder.close()
        await fleet.close()
        await tracing.close()  # the spans of the last requests, flushed

    app.cleanup_ctx.append(upstream_session)
    return app
