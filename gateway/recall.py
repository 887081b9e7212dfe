"""What the gateway remembers about writes it made, for a while, under a key derived from the
request: the case or customer a create made (so a repeat finds it again, also when the caller
gave up waiting), or that a create's outcome is not known yet.

``Recall`` is the interface the engine is given; values are JSON-like so that a fleet-wide
implementation (Redis) can replace ``LocalRecall``, which remembers within one process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from cachetools import TLRUCache

from gateway import logs


class Recall(Protocol):
    async def get(self, key: str) -> Any | None: ...

    async def put(self, key: str, value: Any, ttl_seconds: float) -> None: ...

    async def forget(self, key: str) -> None: ...


class LocalRecall:
    """A bounded in-process store; each entry expires after its own time to live."""

    def __init__(
        self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._data: TLRUCache[str, tuple[Any, float]] = TLRUCache(
            maxsize=max_entries, ttu=lambda _key, value, now: now + value[1], timer=clock
        )

    async def get(self, key: str) -> Any | None:
        found = self._data.get(key)
        return None if found is None else found[0]

    async def put(self, key: str, value: Any, ttl_seconds: float) -> None:
        self._data[key] = (value, ttl_seconds)

    async def forget(self, key: str) -> None:
        self._data.pop(key, None)


async def shared_or_local(text: str | bytes | None, local: Recall, key: str, event: str) -> Any:
    """What a shared memory (Redis, the host's database) held for ``key``, as its JSON ``text``;
    where it held nothing, or something unreadable (said in an ``event`` warning), what this
    process's ``local`` memory holds: an entry made while the shared one was away."""
    if text is None:
        return await local.get(key)
    try:
        return json.loads(text)
    except ValueError:
        logs.get().warning(event, action="the local memory is used")
        return await local.get(key)
