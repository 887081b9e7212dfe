"""Cache purges through Redis: a purge is published, every worker of every replica empties the
named caches and says so, and the publisher waits (briefly) until all have. A subscriber that
lost its connection may have missed purges, so after it reconnects it empties every cache once;
a purge that could not be published is published when Redis is back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from typing import Any

from redis.asyncio.client import PubSub

from gateway import deadline, logs
from gateway.fleet.redis import FAILURES, SharedRedis, Unavailable

Purge = Callable[[list[str] | None], object]  # empty these caches here (None: all)

ACK_SECONDS = 1.0  # the longest a purge waits for the other processes to confirm
ACK_TTL_SECONDS = 10.0
LISTEN_SECONDS = 1.0  # how long one read of the subscription waits for a message


class RedisPurges:
    def __init__(self, redis: SharedRedis, purge: Purge) -> None:
        self.redis, self.purge = redis, purge
        self.channel = redis.key("purge")
        self.subscribed = asyncio.Event()
        # Purges that could not be published, to publish when Redis is back.
        self._pending: set[str] = set()
        self._pending_all = False

    async def publish(self, names: list[str]) -> int:
        """Publish a purge of ``names`` and wait for the processes that received it to confirm.
        Answers how many did; raises `Unavailable` (the purge is then published later)."""
        purge_id = os.urandom(8).hex()
        acks = self.redis.key("purge", purge_id)
        message = json.dumps({"id": purge_id, "names": names})
        try:
            received = await self.redis.publish(self.channel, message)
        except Unavailable:
            self._later(names)
            raise
        left = deadline.left()
        end = asyncio.get_running_loop().time() + min(ACK_SECONDS, left or ACK_SECONDS)
        confirmed = 0
        while confirmed < received and asyncio.get_running_loop().time() < end:
            await asyncio.sleep(0.005)
            try:
                confirmed = await self.redis.run("purge_acks", lambda r: r.llen(acks))
            except Unavailable:
                break
        return confirmed

    def _later(self, names: list[str] | None) -> None:
        if names is None:
            self._pending_all = True
        else:
            self._pending.update(names)

    async def listen(self) -> None:
        """Run until cancelled: receive purges; re-subscribe by itself after Redis failed."""
        lost = False
        while True:
            pubsub = self.redis.subscriber.pubsub()
            try:
                async with asyncio.timeout(self.redis.timeout):
                    await pubsub.subscribe(self.channel)
                self.redis.answered()
                self.subscribed.set()
                if lost:
                    self.purge(None)
                    logs.get().warning("caches_purged_after_reconnect", pid=os.getpid())
                    lost = False
                await self._publish_pending()
                await self._receive(pubsub)
            except FAILURES as exc:
                self.subscribed.clear()
                self.redis.failed("purge_listen", exc)
                lost = True
                await asyncio.sleep(self.redis.retry_seconds)
            finally:
                await _close(pubsub)

    async def _receive(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=LISTEN_SECONDS
            )
            if message is None or message.get("type") != "message":
                continue
            try:
                data: Any = json.loads(message["data"])
                purge_id, names = str(data["id"]), data["names"]
            except (ValueError, KeyError, TypeError):
                logs.get().warning("purge_message_unreadable")
                continue
            self.purge(names if isinstance(names, list) else None)
            await self._confirm(purge_id)

    async def _confirm(self, purge_id: str) -> None:
        acks = self.redis.key("purge", purge_id)

        async def push(r: Any) -> None:
            async with r.pipeline(transaction=True) as pipe:
                pipe.rpush(acks, os.getpid())
                pipe.expire(acks, int(ACK_TTL_SECONDS))
                await pipe.execute()

        with contextlib.suppress(Unavailable):  # the purge is done here all the same
            await self.redis.run("purge_ack", push)

    async def _publish_pending(self) -> None:
        if not (self._pending or self._pending_all):
            return
        names = None if self._pending_all else sorted(self._pending)
        self._pending, self._pending_all = set(), False
        message = json.dumps({"id": os.urandom(8).hex(), "names": names})
        try:
            await self.redis.publish(self.channel, message)
            logs.get().info("cache_purge_published_late", caches=names)
        except Unavailable:
            self._later(names)


async def _close(pubsub: PubSub) -> None:
    try:
        async with asyncio.timeout(0.5):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
    except FAILURES:
        pass
