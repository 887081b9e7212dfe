"""Admin endpoints, enabled by an admin key from the environment (GATEWAY_ADMIN_KEY)."""

from __future__ import annotations

import json

from aiohttp import web

from gateway import jsonio, runtime
from gateway.cache import Caches
from gateway.errors import BadRequest, FieldError


async def purge_caches(request: web.Request) -> web.Response:
    """`POST /admin/cache/purge`, optionally `{"caches": ["labels", ...]}`: empty the caches."""
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
    return jsonio.response({"purged": runtime.of(request).caches.purge(names)})
