"""OAuth tokens shared by the fleet. A CRM that rotates refresh tokens (one that deletes the
previous access and refresh tokens on every refresh) allows one refresh per expiry across all
processes: the tokens live in Redis, a refresh holds a lease lock there and reads the tokens
again once it has it, so the processes that waited use what the first one stored.

While Redis is away, the process falls back to its own copy (in memory, and in the token file
when there is one: then the workers of this host still coordinate through the file). Tokens it
refreshed meanwhile are written to Redis when it is back, unless a later refresh is already
there: the latest refresh is the only one the CRM still honours."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from gateway import deadline, logs
from gateway.errors import DeadlineExceeded
from gateway.fleet.redis import LeaseTimeout, SharedRedis, Unavailable
from gateway.upstream.clock import SYSTEM, Clock
from gateway.upstream.shared import LocalTokenStore, Tokens

# Store the tokens unless the ones there were saved later (ARGV[2]: our saved_at).
_NEWER = """
local found = redis.call('GET', KEYS[1])
if found then
  local ok, saved = pcall(cjson.decode, found)
  if ok and type(saved) == 'table' and tonumber(saved['saved_at'] or 0) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


class RedisTokenStore:
    def __init__(
        self,
        redis: SharedRedis,
        name: str,
        local: LocalTokenStore,
        *,
        lease_seconds: float,
        clock: Clock = SYSTEM,
    ) -> None:
        """``name`` tells this OAuth client's tokens from another's in the same Redis;
        ``lease_seconds``: the longest one refresh may hold the lock (then it expires)."""
        self.redis, self.local, self.lease_seconds, self.clock = redis, local, lease_seconds, clock
        self.key = redis.key("oauth", name, "tokens")
        self.lock_key = redis.key("oauth", name, "refresh")
        self._here = asyncio.Lock()  # one task of this process at a time asks for the lease
        self._unsaved: tuple[Tokens, float] | None = None  # refreshed while Redis was away

    async def get(self) -> Tokens:
        try:
            if self._unsaved is not None:
                await self._save(*self._unsaved)
            text = await self.redis.get(self.key)
        except Unavailable:
            return await self.local.get()
        tokens = _decode(text) if text is not None else None
        if tokens is None:
            return await self.local.get()  # none shared yet: the configured ones, or the file's
        if tokens != await self.local.get():
            logs.redactor.add(tokens.access)
            logs.redactor.add(tokens.refresh)
            await self.local.put(tokens)  # for when Redis is away, and for a restart
        return tokens

    async def put(self, tokens: Tokens) -> None:
        await self.local.put(tokens)
        saved_at = self.clock.time()
        try:
            await self._save(tokens, saved_at)
        except Unavailable:
            self._unsaved = (tokens, saved_at)

    async def _save(self, tokens: Tokens, saved_at: float) -> None:
        text = json.dumps(
            {
                "access_token": tokens.access,
                "refresh_token": tokens.refresh,
                "expires_at": tokens.expires_at,
                "saved_at": saved_at,
            }
        )
        await self.redis.run("oauth_put", lambda r: r.eval(_NEWER, 1, self.key, text, saved_at))
        self._unsaved = None

    def refreshing(self) -> AbstractAsyncContextManager[None]:
        return self._refreshing()

    @asynccontextmanager
    async def _refreshing(self) -> AsyncIterator[None]:
        async with self._here:
            left = deadline.left()
            wait = self.lease_seconds if left is None else max(left, 0.0)
            try:
                lease = await self.redis.acquire(self.lock_key, self.lease_seconds, wait)
            except Unavailable:
                lease = None
            except LeaseTimeout:
                raise DeadlineExceeded(
                    detail="another gateway held the OAuth refresh lock past the budget"
                ) from None
            if lease is None:  # Redis away: this process (and host) on its own
                async with self.local.refreshing():
                    yield
                return
            try:
                yield
            finally:
                await self.redis.release(self.lock_key, lease)


def _decode(text: str) -> Tokens | None:
    try:
        saved: Any = json.loads(text)
        expires = saved.get("expires_at")
        return Tokens(
            access=str(saved["access_token"]),
            refresh=str(saved["refresh_token"]),
            expires_at=float(expires) if isinstance(expires, int | float) else None,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        logs.get().warning("oauth_shared_tokens_unreadable", action="the local tokens are used")
        return None
