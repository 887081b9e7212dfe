"""Rate-limit holds shared by the fleet: a 429 one replica receives holds every replica, since
the CRM's limit is per account, not per process. Each hold is also kept in this process, so
that while Redis is away the process still honours what it saw itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from gateway.fleet.redis import SharedRedis, Unavailable
from gateway.upstream.clock import SYSTEM, Clock
from gateway.upstream.shared import LocalHolds

EXTRA_SECONDS = 1.0  # a hold's key outlives the hold by this much, then Redis drops it


class RedisHolds:
    def __init__(self, redis: SharedRedis, clock: Clock = SYSTEM) -> None:
        self.redis, self.clock = redis, clock
        self.local = LocalHolds(clock)

    def _key(self, key: str) -> str:
        return self.redis.key("hold", key)

    async def until(self, keys: Iterable[str]) -> float:
        names = list(keys)
        here = await self.local.until(names)
        try:
            shared = await self.redis.latest(self._key(k) for k in names)
        except Unavailable:
            return here
        return max(here, shared)

    async def hold(self, key: str, until: float) -> None:
        await self.local.hold(key, until)
        ttl = until - self.clock.time() + EXTRA_SECONDS
        if ttl <= 0:
            return
        with contextlib.suppress(Unavailable):
            await self.redis.hold_until(self._key(key), until, ttl)
