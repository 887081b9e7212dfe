"""Admin endpoints, enabled by an admin key from the environment (GATEWAY_ADMIN_KEY)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import jsonio, reloading
from gateway.body import read_object
from gateway.cache import Caches
from gateway.errors import BadRequest, FieldError
from gateway.fleet.state import FLEET


async def purge_caches(request: web.Request) -> web.Response:
    """`POST /admin/cache/purge`, optionally `{"caches": ["labels", ...]}`: empty the caches,
    here and in every other process of the fleet."""
    # Any content type: an operator's `curl -d` sends form encoding.
    body = await read_object(request, json_type=False) or {}
    purged = reloading.of(request).caches.purge(_names(body))
    # Then every other worker and replica (docs/behaviour.md §5): how many processes did.
    processes = await request.app[FLEET].purge(purged)
    return jsonio.response({"purged": purged, "processes": processes})


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
