"""Admin endpoints, enabled by an admin key from the environment (GATEWAY_ADMIN_KEY)."""

from __future__ import annotations

import json

from aiohttp import web

from gateway import jsonio, runtime
from gateway.cache import Caches
from gateway.errors import BadRequest, FieldError
from gateway.fleet.state import FLEET


async def purge_caches(request: web.Request) -> web.Response:
    """`POST /admin/cache/purge`, optionally `{"caches": ["labels", ...]}`: empty the caches,
    here and in every other process of the fleet."""
    raw = await request.read()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise BadRequest("The request body is not valid JSON.") from None
    names = body.get("caches") if isinstance(body, dict) else None
    if names is not None and (not isinstance(names, list) or not set(names) <= set(Caches.NAMES)):
        raise BadRequest(
            "Unknown cache.",
            fields=[FieldError("caches", "Choose from: " + ", ".join(Caches.NAMES))],
        )
    purged = runtime.of(request).caches.purge(names)
    # Then every other worker and replica (docs/behaviour.md §5): how many processes did.
    processes = await request.app[FLEET].purge(purged)
    return jsonio.response({"purged": purged, "processes": processes})
