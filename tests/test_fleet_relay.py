"""The supervisor's relay between the workers of one host, with real socket pairs: a purge one
worker asks for reaches every other worker, and the asker hears back once all have emptied
their caches; a worker that has gone does not hold the others up."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest

from gateway.fleet.host import HostChannel
from gateway.fleet.relay import Relay


@pytest.fixture
def relay() -> Iterator[Relay]:
    """A relay polled by a thread, as the supervisor's loop polls it."""
    made, stop = Relay(), threading.Event()

    def loop() -> None:
        while not stop.is_set():
            made.poll(0.02)

    thread = threading.Thread(target=loop)
    thread.start()
    yield made
    stop.set()
    thread.join()
    made.close()


class Worker:
    def __init__(self, line: socket.socket) -> None:
        self.purged: list[list[str] | None] = []
        line.setblocking(False)
        self.channel = HostChannel(line, self.purged.append)
        self.task = asyncio.create_task(self.channel.listen())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_a_purge_reaches_every_worker_of_the_host(relay: Relay) -> None:
    workers = [Worker(relay.line()) for _ in range(3)]
    await asyncio.sleep(0.05)  # connected
    try:
        assert await workers[1].channel.publish(["labels", "meta"]) == 3
        assert [w.purged for w in workers] == [[["labels", "meta"]], [], [["labels", "meta"]]]
        assert await workers[0].channel.publish(["meta"]) == 3
        # A worker that has gone (its line closed) is left out, at once.
        await workers[2].stop()
        await asyncio.sleep(0.05)
        assert await asyncio.wait_for(workers[0].channel.publish(["labels"]), 0.5) == 2
        assert workers[1].purged[-1] == ["labels"]
    finally:
        for w in workers:
            await w.stop()


async def test_a_worker_alone_hears_back_at_once(relay: Relay) -> None:
    worker = Worker(relay.line())
    await asyncio.sleep(0.05)
    try:
        assert await asyncio.wait_for(worker.channel.publish(["labels"]), 0.5) == 1
    finally:
        await worker.stop()
