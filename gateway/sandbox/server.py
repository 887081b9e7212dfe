"""A Zendesk-compatible HTTP server for the endpoints the mapping uses. `make run` and the
integration tests put the gateway in front of it; `faults` lets tests make it slow or fail.
How closely it follows Zendesk, and where it is harsher, is in docs/sandbox.md."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.sandbox import api
from gateway.sandbox.levers import (
    CALLS,
    CREDENTIALS,
    FAULTS,
    LOAD,
    STORE,
    TRACE_CONTEXT,
    Credentials,
    Faults,
    Load,
)
from gateway.sandbox.rules import ZendeskError
from gateway.sandbox.store import Store

__all__ = ["CALLS", "CREDENTIALS", "FAULTS", "LOAD", "STORE", "TRACE_CONTEXT", "Credentials",
           "Faults", "Load"]  # fmt: skip

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The writes with a limit of their own: updates of one user, updates of one ticket.
_LIMITED = re.compile(r"^/api/v2/(users|tickets)/(\d+)(?:\.json)?$")


@web.middleware
async def _zendesk(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    app[CALLS].append(f"{request.method} {request.path}")
    trace = request.headers.get("traceparent"), request.headers.get("tracestate")
    app[TRACE_CONTEXT].append((f"{request.method} {request.path}", *trace))
    load = app[LOAD]
    load.now += 1
    load.peak = max(load.peak, load.now)
    try:
        return await _handle(request, handler)
    finally:
        load.now -= 1


def _record(request: web.Request) -> tuple[str, int] | None:
    found = _LIMITED.match(request.path) if request.method == "PUT" else None
    return (found.group(1).removesuffix("s"), int(found.group(2))) if found else None


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    faults = app[FAULTS]
    faulty = faults.take(request)
    if faulty and faults.delay:
        await asyncio.sleep(faults.delay)
    if faulty and faults.reset and request.transport is not None:
        request.transport.abort()
        return web.Response()  # never sent: the connection is gone
    if faulty and faults.garbage:
        return web.Response(text='{"user": {"id": 1', content_type="application/json")
    if faulty and faults.status:
        return _injected(faults, faults.status)
    if request.path != "/oauth/tokens" and not app[CREDENTIALS].accepts(
        request.headers.get("Authorization")
    ):
        return api.answer({"error": "Couldn't authenticate you"}, 401)
    store = app[STORE]
    try:
        limits = {}
        if request.path != "/oauth/tokens":
            limits = store.limits.take(_record(request), store.clock())
        response = await handler(request)
        response.headers.update(limits)
    except ZendeskError as exc:
        response = _error(exc)
    except web.HTTPNotFound:
        response = api.answer({"error": "InvalidEndpoint", "description": "Not found"}, 404)
    if faulty and faults.delay_after:
        await asyncio.sleep(faults.delay_after)
    if faulty and faults.reset_after and request.transport is not None:
        request.transport.abort()  # applied, and its answer lost
        return web.Response()
    if faulty and faults.status_after:
        return _injected(faults, faults.status_after)  # applied, and answered with an error
    return response


def _injected(faults: Faults, status: int) -> web.Response:
    headers = {"Retry-After": faults.retry_after} if faults.retry_after else {}
    headers.update(faults.headers)
    body = faults.body
    if body is None:
        body = json.dumps({"error": "ServerError", "description": "injected"})
    return web.Response(status=status, text=body, content_type=faults.content_type, headers=headers)


def _error(exc: ZendeskError) -> web.Response:
    if exc.text is not None:
        return web.Response(status=exc.status, text=exc.text, headers=exc.headers)
    return api.answer(exc.body, exc.status, exc.headers)


def create_sandbox(
    store: Store, *, credentials: Credentials | None = None, faults: Faults | None = None
) -> web.Application:
    app = web.Application(middlewares=[_zendesk])
    app[STORE] = store
    app[FAULTS] = faults or Faults()
    app[CREDENTIALS] = credentials or Credentials()
    app[CALLS] = []
    app[TRACE_CONTEXT] = []
    app[LOAD] = Load()
    api.routes(app.router)
    return app
