"""What creates made, remembered across the fleet (docs/behaviour.md §5): a repeat through
any process finds the case or customer the first create made, also on a CRM without
idempotency keys. Entries are JSON in Redis with their time to live.

Each entry is also kept in this process (in the host's memory, for a worker of a supervisor:
`host_recall`), so that while Redis is away the process (or host) still finds what it made
itself, and an entry made then is found once Redis is back (where Redis holds nothing for the
key). What a write made is remembered even past the request's budget
(one short Redis timeout): a repeat through another process must find it."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from gateway.errors import DeadlineExceeded
from gateway.fleet.redis import SharedRedis, Unavailable
from gateway.recall import LocalRecall, Recall, shared_or_local


class RedisRecall:
    def __init__(self, redis: SharedRedis, local: Recall | None = None) -> None:
        self.redis = redis
        self.local = local or LocalRecall()

    def _key(self, key: str) -> str:
        return self.redis.key("recall", key)

    async def get(self, key: str) -> Any | None:
        try:
            text = await self.redis.get(self._key(key))
        except Unavailable:
            if self.redis.up:  # the budget cut the call short: not knowing is not "not made"
                raise DeadlineExceeded(
                    detail="the request's budget ran out while reading the fleet's memory"
                ) from None
            return await self.local.get(key)
        return await shared_or_local(text, self.local, key, "shared_recall_unreadable")

    async def put(self, key: str, value: Any, ttl_seconds: float) -> None:
        await self.local.put(key, value, ttl_seconds)
        with contextlib.suppress(Unavailable):
            await self.redis.set(self._key(key), json.dumps(value), ttl_seconds, past_budget=True)

    async def forget(self, key: str) -> None:
        await self.local.forget(key)
        with contextlib.suppress(Unavailable):
            await self.redis.delete(self._key(key))
