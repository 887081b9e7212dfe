"""Redis, guarded: every call has a short timeout (never longer than the request's budget), and
a failure marks Redis down for `retry_seconds`, during which calls fail at once, so that
callers fall back to per-process behaviour without paying a timeout each. Going down and
coming back are a loud log line and a metric; the connection is re-made by itself.

The primitives the fleet is built from, each one atomic in Redis: a hold that only grows
(rate limits), a lease lock (one holder at a time, for at most its lease; never set by an ask
its client gave up on), set-if-absent with a TTL (claims), plain values (tokens), and
publish/subscribe (purges)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway import deadline, logs, metrics
from gateway.upstream.clock import SYSTEM, Clock

T = TypeVar("T")

# Errors that mean "Redis is not there, or not answering": the fleet falls back, no request fails.
FAILURES = (RedisError, OSError, TimeoutError)

POLL_SECONDS = 0.02  # how often a lease is asked for again while another process holds it

# Raise the hold to ARGV[1] (ms) unless a later one is there; expire with it (ARGV[2] ms).
_HOLD = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 0
"""
# Take the lease, unless Redis's clock is past ARGV[3] (ms): the moment its client stops waiting
# for the answer. Redis runs what waited in its socket when it resumes from a stall; a lease set
# then would be held by nobody. Answers {1 taken, 0 held by another, -1 too late}, Redis's time.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[3]) then return {-1, now} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, now} end
return {0, now}
"""
# Delete the lease if it is ours, and answer Redis's time (ms): once that is past an acquire's
# deadline, no acquire of ours can still set the lease.
_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# Delete the lease only if it is still ours (it may have expired and gone to someone else).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Set if absent (with a TTL); either way, answer the value now there and whether we set it.
_CLAIM = """
local found = redis.call('GET', KEYS[1])
if found then return {0, found} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ARGV[1]}
"""


class Unavailable(Exception):
    """Redis did not answer in time, or is down: fall back to per-process behaviour.
    ``sent``: the command went out (Redis may still run it), rather than failing at once."""

    def __init__(self, operation: str, *, sent: bool = False) -> None:
        super().__init__(operation)
        self.sent = sent


class LeaseTimeout(Exception):
    """Another holder kept the lease for longer than we could wait."""


def connect(
    url: str, *, prefix: str, timeout: float = 0.25, retry_seconds: float = 1.0
) -> SharedRedis:
    """Redis at ``url``; connections are made on first use."""
    return SharedRedis(
        client(url, timeout),
        subscriber=client(url, timeout, retries=0),
        prefix=prefix,
        timeout=timeout,
        retry_seconds=retry_seconds,
    )


def client(url: str, timeout: float, *, retries: int = 1) -> aioredis.Redis:
    """A client for `redis://`, `rediss://` (TLS, managed Redis), `unix://`, or
    `redis+sentinel://[:password@]host:port[,host:port...]/service[/db]` (the master that
    Sentinel names, found again after a failover). ``retries``: one more try on a fresh
    connection, since a restarted Redis leaves dead ones in the pool; none for a subscription,
    whose loss must be seen (messages may have been missed meanwhile)."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), retries),
        "decode_responses": True,
        "encoding_errors": "replace",  # a value that is not UTF-8 is unreadable, not an error
    }
    if not url.startswith("redis+sentinel://"):
        return aioredis.Redis.from_url(url, **options)
    from redis.asyncio.sentinel import Sentinel

    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    nodes = [(h.rpartition(":")[0], int(h.rpartition(":")[2] or 26379)) for h in hosts.split(",")]
    service, _, db = parts.path.strip("/").partition("/")
    password = unquote(parts.password) if parts.password else None
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        nodes, socket_timeout=timeout, socket_connect_timeout=timeout, password=password
    )
    master: aioredis.Redis = sentinel.master_for(
        service, db=int(db or 0), **options, password=password
    )
    return master


class SharedRedis:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        subscriber: aioredis.Redis | None = None,
        prefix: str,
        timeout: float = 0.25,
        retry_seconds: float = 1.0,
        clock: Clock = SYSTEM,
    ) -> None:
        self.redis, self.prefix, self.timeout = redis, prefix, timeout
        self.subscriber = subscriber or redis  # the client subscriptions are made with
        self.retry_seconds, self.clock = retry_seconds, clock
        self._down_until: float | None = None  # monotonic; None: up
        self._offset = 0.0  # Redis's clock minus ours (seconds), as its answers show it
        self._giving_back: set[asyncio.Task[None]] = set()
        metrics.SHARED_STATE_UP.set(1)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def up(self) -> bool:
        return self._down_until is None

    async def run(
        self,
        operation: str,
        command: Callable[[aioredis.Redis], Awaitable[T]],
        *,
        past_budget: bool = False,
    ) -> T:
        """One Redis command, inside the short timeout and the request's budget. Raises
        `Unavailable` (at once while Redis is known to be down). ``past_budget``: the short
        timeout only, for what must reach Redis even when the request's budget is spent (a
        lease given back, what a write made)."""
        if self._down_until is not None and self.clock.monotonic() < self._down_until:
            raise Unavailable(operation)
        timeout, budgeted = self._timeout(past_budget)
        try:
            async with asyncio.timeout(timeout):
                result = await command(self.redis)
        except FAILURES as exc:
            if not (budgeted and isinstance(exc, TimeoutError)):  # our budget, not Redis
                self.failed(operation, exc)
            raise Unavailable(operation, sent=True) from exc
        self.answered()
        return result

    def _timeout(self, past_budget: bool) -> tuple[float, bool]:
        """How long a call may take now, and whether the request's budget (not Redis's
        timeout) set it."""
        left = None if past_budget else deadline.left()
        if left is not None and left < self.timeout:
            return max(left, 0.001), True
        return self.timeout, False

    def failed(self, operation: str, exc: BaseException) -> None:
        """Redis failed us: per-process behaviour until `retry_seconds` have passed."""
        metrics.SHARED_STATE_ERRORS.labels(operation).inc()
        if self._down_until is None:
            metrics.SHARED_STATE_UP.set(0)
            logs.get().error(
                "shared_state_unavailable",
                operation=operation,
                error=type(exc).__name__,
                detail=str(exc)[:200],
                action="serving with per-process state until Redis answers again",
            )
        self._down_until = self.clock.monotonic() + self.retry_seconds

    def answered(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            metrics.SHARED_STATE_UP.set(1)
            logs.get().warning("shared_state_restored", pid=os.getpid())

    async def close(self) -> None:
        for task in list(self._giving_back):
            task.cancel()
        await self.redis.aclose()
        if self.subscriber is not self.redis:
            await self.subscriber.aclose()

    # -- primitives ------------------------------------------------------------------------

    async def get(self, key: str) -> str | None:
        found = await self.run("get", lambda r: r.get(key))
        return None if found is None else _text(found)

    async def set(
        self, key: str, value: str, ttl_seconds: float | None = None, *, past_budget: bool = False
    ) -> None:
        px = None if ttl_seconds is None else max(1, math.ceil(ttl_seconds * 1000))
        await self.run("set", lambda r: r.set(key, value, px=px), past_budget=past_budget)

    async def delete(self, key: str) -> None:
        await self.run("delete", lambda r: r.delete(key), past_budget=True)

    async def hold_until(self, key: str, until: float, ttl_seconds: float) -> None:
        """Raise the hold on ``key`` to ``until`` (wall-clock seconds); a later one stays."""
        args = (math.ceil(until * 1000), max(1, math.ceil(ttl_seconds * 1000)))
        await self.run("hold", lambda r: r.eval(_HOLD, 1, key, *args))

    async def latest(self, keys: Iterable[str]) -> float:
        """The latest hold among the keys (wall-clock seconds); 0 when none is held."""
        names = list(keys)
        found = await self.run("holds", lambda r: r.mget(names))
        return max((int(v) / 1000 for v in found if v is not None), default=0.0)

    async def set_if_absent(self, key: str, value: str, ttl_seconds: float) -> str | None:
        """Claim ``key`` for ``value`` unless someone has: None when we did, else the value
        the first claimant set (a claim is atomic across the fleet)."""
        px = max(1, math.ceil(ttl_seconds * 1000))
        ours, found = await self.run("claim", lambda r: r.eval(_CLAIM, 1, key, value, px))
        return None if int(ours) else str(found)

    async def acquire(self, key: str, lease_seconds: float, wait_seconds: float) -> str:
        """Take the lease on ``key`` for at most ``lease_seconds``, waiting up to
        ``wait_seconds`` for its holder. Answers the token to release it with.

        An attempt we stop waiting for must leave no lease behind: Redis refuses it past the
        moment we stop (by its own clock, whose offset from ours its answers teach us), and
        one that Redis ran in time but whose answer we did not see is given back when Redis
        answers again (`_give_back`)."""
        token = os.urandom(12).hex()
        px = max(1, math.ceil(lease_seconds * 1000))
        end = self.clock.monotonic() + wait_seconds
        recalibrated = False
        while True:
            sent = self.clock.time()
            not_after = math.floor((sent + self._offset + self._timeout(False)[0]) * 1000)
            try:
                taken, now = await self.run("lease", _eval(_ACQUIRE, key, token, px, not_after))
            except Unavailable as exc:
                if exc.sent:
                    self._give_back_later(key, token, not_after, lease_seconds)
                raise
            self._offset = int(now) / 1000 - (sent + self.clock.time()) / 2
            if int(taken) == 1:
                return token
            if int(taken) == -1 and not recalibrated:  # our guess of Redis's clock was off
                recalibrated = True
                continue
            if self.clock.monotonic() >= end:
                raise LeaseTimeout(key)
            await self.clock.sleep(POLL_SECONDS)

    def _give_back_later(self, key: str, token: str, not_after: int, lease: float) -> None:
        task = asyncio.ensure_future(
            self._give_back(key, token, not_after, self.clock.monotonic() + lease)
        )
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    async def _give_back(self, key: str, token: str, not_after: int, until: float) -> None:
        """Delete the lease an acquire we stopped waiting for may have set (Redis ran it in
        time, its answer came late or not at all), asking until Redis's clock is past that
        acquire's deadline (`not_after`, ms) or the lease would be over anyway. Outside the
        request's budget and Redis's up/down state: this is cleaning up, not serving."""
        while self.clock.monotonic() < until:
            try:
                async with asyncio.timeout(self.timeout):
                    now = await self.redis.eval(_GIVE_BACK, 1, key, token)
                if int(now) > not_after:
                    return
            except FAILURES:
                pass
            await self.clock.sleep(self.timeout)

    async def release(self, key: str, token: str) -> None:
        """Give the lease back if it is still ours, also past the request's budget (a holder
        that timed out frees the key at once); a Redis failure here only lets it expire."""
        with contextlib.suppress(Unavailable):
            await self.run("release", lambda r: r.eval(_RELEASE, 1, key, token), past_budget=True)

    @asynccontextmanager
    async def lease(
        self, key: str, lease_seconds: float, wait_seconds: float
    ) -> AsyncIterator[None]:
        """Hold the lease on ``key`` around a block (`acquire`, then `release`)."""
        token = await self.acquire(key, lease_seconds, wait_seconds)
        try:
            yield
        finally:
            await self.release(key, token)

    async def publish(self, channel: str, message: str) -> int:
        """How many subscribers received it."""
        received: int = await self.run("publish", lambda r: r.publish(channel, message))
        return received


def _eval(script: str, key: str, *args: str | int) -> Callable[[aioredis.Redis], Awaitable[Any]]:
    """A command running ``script`` on ``key`` with ``args``."""
    return lambda r: r.eval(script, 1, key, *args)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
