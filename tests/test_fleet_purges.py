"""Cache purges through a real Redis: every subscribed process empties the named caches and
confirms before the publisher answers; after a lost connection each process empties everything
once, and a purge that could not be published is published when Redis is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from conftest import RedisServer, events

from gateway.fleet.purges import RedisPurges
from gateway.fleet.redis import Unavailable, connect


class Process:
    """One process's purge subscriber, and what it was asked to empty."""

    def __init__(self, url: str) -> None:
        self.redis = connect(url, prefix="test", retry_seconds=0.1)
        self.purged: list[list[str] | None] = []
        self.purges = RedisPurges(self.redis, self.purged.append)
        self.task = asyncio.create_task(self.purges.listen())

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.redis.close()


@pytest.fixture
async def fleet(redis_server: RedisServer) -> AsyncIterator[list[Process]]:
    made = [Process(redis_server.url) for _ in range(3)]
    for p in made:
        await asyncio.wait_for(p.purges.subscribed.wait(), 5)
    yield made
    for p in made:
        await p.close()


async def test_a_purge_reaches_every_process_before_it_answers(fleet: list[Process]) -> None:
    assert await fleet[0].purges.publish(["labels"]) == 3
    assert [p.purged for p in fleet] == [[["labels"]]] * 3  # done, not just sent


async def test_after_a_lost_connection_each_empties_everything_once(
    fleet: list[Process], redis_server: RedisServer, capsys: object
) -> None:
    redis_server.stop()
    with pytest.raises(Unavailable):
        await fleet[0].purges.publish(["meta"])  # missed by the others: kept for later
    redis_server.start()
    for p in fleet:
        for _ in range(200):
            if p.purges.subscribed.is_set() and None in p.purged:
                break
            await asyncio.sleep(0.02)
    assert [p.purged.count(None) for p in fleet] == [1, 1, 1]
    for _ in range(100):  # and the purge that waited is published now
        if all(["meta"] in p.purged for p in fleet[1:]):
            break
        await asyncio.sleep(0.02)
    assert all(["meta"] in p.purged for p in fleet[1:])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert sum(e["event"] == "caches_purged_after_reconnect" for e in events(out)) == 3
