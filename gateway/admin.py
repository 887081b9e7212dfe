"""Admin endpoints, enabled by an admin key from the environment (GATEWAY_ADMIN_KEY)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import jsonio, runtime
from gateway.body import read_object
from gateway.cache import Caches
from gateway.errors import BadRequest, FieldError


async def purge_caches(request: web.Request) -> web.Response:
    """`POST /admin/cache/purge`, optionally `{"caches": ["labels", ...]}`: empty the caches."""
    # Any content type: an operator's `curl -d` sends form encoding.
    body = await read_object(request, json_type=False) or {}
    return jsonio.response({"purged": runtime.of(request).caches.purge(_names(body))})


def _names(body: dict[str, Any]) -> list[str] | None:
    unknown = [FieldError(k, "Unknown field.") for k in body if k != "caches"]
    names = body.get("caches")
    wrong = names is not None and (
        not isinstance(names, list)
        or not all(isinstance(n, str) and n in Caches.NAMES for n in names)
    )
    if wrong:
        unknown.append(FieldError("caches", "A list of: " + ", ".join(Caches.NAMES)))
    if unknown:
        raise BadRequest("The purge request is not valid.", fields=unknown)
    return names or None
