"""What creates made, remembered across the fleet through a real redis-server: one process
remembers, every process recalls, for the entry's time to live; what a write made reaches
Redis even past its request's budget; with Redis stopped, each process recalls what it made
itself (the workers of a host what any of them made), also once Redis is back; a read cut
short by the budget is not "never made"."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from conftest import RedisServer

from gateway import deadline
from gateway.errors import DeadlineExceeded
from gateway.fleet.host_files import HostFiles
from gateway.fleet.host_recall import HostRecall
from gateway.fleet.recall import RedisRecall
from gateway.fleet.redis import SharedRedis, connect


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[SharedRedis]]:
    made = [connect(redis_server.url, prefix="test", retry_seconds=0.1) for _ in range(3)]
    yield made
    for r in made:
        await r.close()


async def test_one_process_remembers_and_every_process_recalls(
    clients: list[SharedRedis], redis_server: RedisServer
) -> None:
    a, b, c = (RedisRecall(r) for r in clients)
    await a.put("case:k1", {"id": "20001", "digest": "d"}, 7200)
    assert await b.get("case:k1") == {"id": "20001", "digest": "d"}
    assert await c.get("case:none") is None
    async with redis.asyncio.Redis.from_url(redis_server.url) as raw:
        assert 7_000_000 < await raw.pttl("test:recall:case:k1") <= 7_200_000
        await b.put("case:k2", {"unknown": True}, 0.05)
        await asyncio.sleep(0.1)  # Redis's own clock ends it
        assert await raw.exists("test:recall:case:k2") == 0
    await c.forget("case:k1")
    assert await b.get("case:k1") is None


async def test_what_a_write_made_is_remembered_past_the_budget(
    clients: list[SharedRedis],
) -> None:
    a, b = RedisRecall(clients[0]), RedisRecall(clients[1])
    with deadline.budget(0.01, 0.0):
        await asyncio.sleep(0.02)  # the budget is spent
        await a.put("customer:k", {"id": "7"}, 60)
    assert await b.get("customer:k") == {"id": "7"}


async def test_with_redis_stopped_each_process_recalls_what_it_made(
    clients: list[SharedRedis], redis_server: RedisServer
) -> None:
    a, b = RedisRecall(clients[0]), RedisRecall(clients[1])
    await a.put("case:before", {"id": "1"}, 60)
    redis_server.stop()
    await a.put("case:during", {"id": "2"}, 60)
    assert await a.get("case:during") == {"id": "2"}
    assert await a.get("case:before") == {"id": "1"}  # kept here too
    assert await b.get("case:during") is None  # b never knew it
    assert not clients[0].up and not clients[1].up

    redis_server.start()  # empty: nothing was saved
    await asyncio.sleep(0.15)  # retry_seconds
    assert await a.get("case:during") == {"id": "2"}  # Redis has nothing: what a made itself
    await b.put("case:during", {"id": "3"}, 60)
    assert await a.get("case:during") == {"id": "3"}  # Redis's answer comes first
    assert clients[0].up


async def test_an_unreadable_entry_is_this_processs_memory(
    clients: list[SharedRedis], redis_server: RedisServer
) -> None:
    a = RedisRecall(clients[0])
    await a.put("case:x", {"id": "5"}, 60)
    async with redis.asyncio.Redis.from_url(redis_server.url) as raw:
        await raw.set("test:recall:case:x", b"\xff not json")
    assert await a.get("case:x") == {"id": "5"}


async def test_a_read_cut_short_by_the_budget_is_a_timeout_not_never_made() -> None:
    hung = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    slow = connect(f"redis://127.0.0.1:{hung.getsockname()[1]}/0", prefix="test")
    recall: Any = RedisRecall(slow)
    try:
        with deadline.budget(0.15, 0.1), pytest.raises(DeadlineExceeded):
            await recall.get("case:k")
        assert slow.up
        await recall.local.put("case:k", {"id": "9"}, 60)
        assert await recall.get("case:k") == {"id": "9"}  # Redis's own timeout: it is down
        assert not slow.up
    finally:
        await slow.close()
        hung.close()


async def test_with_redis_stopped_the_workers_of_a_host_recall_each_others_creates(
    clients: list[SharedRedis], redis_server: RedisServer, tmp_path: Path
) -> None:
    """Behind Redis stands the host's memory (a supervisor's workers): while Redis is away, what
    one worker made is still found by another worker of its host."""
    a, b = (RedisRecall(r, HostRecall(HostFiles(tmp_path))) for r in clients[:2])
    try:
        redis_server.stop()
        await a.put("case:during", {"id": "2"}, 60)
        assert await b.get("case:during") == {"id": "2"}
        assert not clients[0].up and not clients[1].up
    finally:
        for recall in (a, b):
            assert isinstance(recall.local, HostRecall)
            await recall.local.close()
