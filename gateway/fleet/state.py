"""The fleet as one process sees it: the holds and token stores its upstream client uses, the
per-key write locks and the memory of creates its engine uses, and the purge that reaches every
other process. Made once per process; it outlives reloads, so a reload keeps the holds, the
tokens, the locks and the memory it has.

The locks and the memory are the fleet's through Redis when it is configured, else the host's
(the files in the supervisor's state directory) for a worker of `serve --workers N`, else this
process's own. Under Redis, the host's stand behind it: while Redis is away the workers of one
host still write one at a time and recall each other's creates (docs/behaviour.md §5)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway import logs
from gateway.config import Config
from gateway.fleet import redis as shared
from gateway.fleet.holds import RedisHolds
from gateway.fleet.host import HostChannel
from gateway.fleet.host_files import HostFiles
from gateway.fleet.host_locks import HostLocks
from gateway.fleet.host_recall import HostRecall
from gateway.fleet.locks import RedisLocks
from gateway.fleet.purges import Purge, RedisPurges
from gateway.fleet.recall import RedisRecall
from gateway.fleet.tokens import RedisTokenStore
from gateway.locks import KeyedLocks, LocalLocks
from gateway.recall import LocalRecall, Recall
from gateway.upstream.shared import Holds, LocalHolds, LocalTokenStore, Tokens, TokenStore

TOKEN_FILE = "oauth-tokens.json"  # in the supervisor's state directory, when none is configured


def _nothing(names: list[str] | None) -> None:
    pass


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Fleet:
    def __init__(
        self,
        *,
        redis: shared.SharedRedis | None = None,
        host: socket.socket | None = None,
        state_dir: Path | None = None,
        lease_seconds: float = 6.0,
    ) -> None:
        """``host``: this worker's line to its supervisor; ``state_dir``: the supervisor's
        private directory (the tokens' file when none is configured); ``lease_seconds``: the
        longest a token refresh may hold the fleet's lock."""
        self.redis, self.state_dir, self.lease_seconds = redis, state_dir, lease_seconds
        self.holds: Holds = RedisHolds(redis) if redis is not None else LocalHolds()
        # One writer per case (and per create), and what creates made: fleet-wide with Redis,
        # host-wide behind it (and without it) for the workers of a supervisor.
        self.host_locks: HostLocks | None = None
        self.host_recall: HostRecall | None = None
        locks: KeyedLocks
        recall: Recall
        if state_dir is not None:
            files = HostFiles(state_dir)
            locks = self.host_locks = HostLocks(files)
            recall = self.host_recall = HostRecall(files)
        else:
            locks, recall = LocalLocks(), LocalRecall()
        self.locks: KeyedLocks = RedisLocks(redis, locks) if redis is not None else locks
        self.recall: Recall = RedisRecall(redis, recall) if redis is not None else recall
        self._host_sock = host
        self.purges: RedisPurges | None = None
        self.host: HostChannel | None = None
        self._stores: dict[tuple[str, str, str], TokenStore] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def tokens(self, initial: Tokens, file: Path | None, client_id: str) -> TokenStore:
        """The token store of one OAuth client; the same one again after a reload."""
        if file is None and self.state_dir is not None:
            file = self.state_dir / TOKEN_FILE
        key = (client_id, str(file), initial.refresh)
        if key not in self._stores:
            local = LocalTokenStore(initial, file)
            self._stores[key] = (
                RedisTokenStore(
                    self.redis, digest(client_id), local, lease_seconds=self.lease_seconds
                )
                if self.redis is not None
                else local
            )
        return self._stores[key]

    async def start(self, purge: Purge) -> None:
        """Start receiving the purges of other processes; ``purge`` empties caches here."""
        if self.host_locks is not None:  # what a worker that died holding locks left behind
            self.host_locks.sweep()
        if self.redis is not None:
            self.purges = RedisPurges(self.redis, purge)
            self._run(self.purges.listen())
        if self._host_sock is not None:
            self.host = HostChannel(self._host_sock, purge)
            self._run(self.host.listen())

    def _run(self, job: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(job))

    async def purge(self, names: list[str]) -> int:
        """Empty ``names`` in every other process of the fleet (this one has already); answers
        how many processes have, this one included."""
        reached, via = 1, "none"
        if self.purges is not None:
            with contextlib.suppress(shared.Unavailable):
                reached, via = await self.purges.publish(names), "redis"
        if via == "none" and self.host is not None:
            reached, via = await self.host.publish(names), "host"
        logs.get().info("cache_purge", caches=names, processes=reached, via=via)
        return reached

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.host_recall is not None:
            await self.host_recall.close()
        if self.redis is not None:
            await self.redis.close()


def build(
    config: Config, *, host: socket.socket | None = None, state_dir: Path | None = None
) -> Fleet:
    """The fleet a config describes; touches no network (Redis is connected on first use)."""
    settings = config.shared_state
    redis = None
    if settings.redis_url:
        redis = shared.connect(
            settings.redis_url,
            prefix=f"{settings.key_prefix}:{digest(config.upstream.base_url)}",
            timeout=settings.timeout_seconds,
            retry_seconds=settings.retry_seconds,
        )
    return Fleet(
        redis=redis,
        host=host,
        state_dir=state_dir,
        lease_seconds=config.upstream.attempt_timeout_seconds + 1.0,
    )


FLEET: web.AppKey[Fleet] = web.AppKey("fleet", Fleet)
