"""The admin API, enabled by an admin key from the environment (GATEWAY_ADMIN_KEY)."""

from __future__ import annotations

from typing import Any

from gateway.operation import Args
from gateway.runtime import Runtime


async def purge_caches(live: Runtime, args: Args) -> Any:
    """`POST /admin/cache/purge`, optionally `{"caches": ["labels", ...]}` (none or `[]`:
    every cache): empty the caches, here and in every other process of the fleet."""
    purged = live.caches.purge((args.body or {}).get("caches") or None)
    # Then every other worker and replica (docs/behaviour.md §5): how many processes did.
    processes = await live.fleet.purge(purged) if live.fleet is not None else 1
    return {"purged": purged, "processes": processes}
