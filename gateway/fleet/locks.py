"""One writer per key across the fleet (docs/behaviour.md §5): the updates of one case, and
the creates of one identity, run one at a time whichever process they came through.

A holder first takes this process's lock for the key (the host's, for a worker of a
supervisor: `host_locks`), so that one task per process (or host) at most asks Redis; then a
lease lock in Redis, lasting what the holder asked for when it came (what is left of its
request's budget, the grace a create runs on past it, and a second to give it back:
`gateway.mapping.once.lease`), less the time it waited for that first lock; it waits for the
lease at most what is left of the budget. A
wait that runs out is the gateway's timeout (504), never a write without the lock. When Redis
is away that first lock alone serialises the writers, of this host or this process, as
without Redis (SharedRedis logs it and counts it); a lease whose holder died ends with its
lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway import deadline
from gateway.errors import DeadlineExceeded
from gateway.fleet.redis import LeaseTimeout, SharedRedis, Unavailable
from gateway.locks import KeyedLocks, LocalLocks

RELEASE_SECONDS = 1.0  # a lease is never shorter: time to give it back


class RedisLocks:
    def __init__(self, redis: SharedRedis, local: KeyedLocks | None = None) -> None:
        """``local``: the lock taken first, and alone while Redis is away."""
        self.redis = redis
        self.local = local if local is not None else LocalLocks()

    @asynccontextmanager
    async def hold(self, key: str, lease_seconds: float) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        async with self.local.hold(key, lease_seconds):
            name = self.redis.key("lock", key)
            token = await self._acquire(name, lease_seconds - (loop.time() - asked))
            try:
                yield
            finally:
                if token is not None:
                    await self.redis.release(name, token)

    async def _acquire(self, name: str, lease_seconds: float) -> str | None:
        """The lease's token; None when Redis is away (the first lock alone)."""
        lease = max(lease_seconds, RELEASE_SECONDS)  # what is left of what the holder asked
        left = deadline.left()  # measured now, after waiting for this process's lock
        wait = lease_seconds if left is None else max(left, 0.0)
        try:
            return await self.redis.acquire(name, lease, wait)
        except LeaseTimeout:
            raise DeadlineExceeded(
                detail="another gateway process held the write lock past the request's budget"
            ) from None
        except Unavailable:
            if self.redis.up:  # the budget cut the call short, not Redis: no lock, no write
                raise DeadlineExceeded(
                    detail="the request's budget ran out while taking the write lock"
                ) from None
            return None
