"""A connection must send a whole request head in time (docs/behaviour.md §6.3).

aiohttp's server bounds the wait between the requests of a kept-alive connection
(`keepalive_timeout`, from `server.keepalive_timeout_seconds`: the connection is closed when the
next request's head is not complete by then), but not the wait for a new connection's first request:
one that sends nothing, or a header line a minute (slowloris), was kept open for ever, and enough of
them take every file descriptor. `HeadDeadline` closes a connection that has not sent a whole
request head `server.header_timeout_seconds` after the gateway first saw it. It uses aiohttp's
public `Server`: its `connections`, and its `request_factory`, which is called once a request's head
has been read (and which each connection copies when it is made, so it is wrapped before the server
listens). Connections are looked at every quarter of the time (at most every second), and first seen
at one of those looks: one is closed within two of them past its deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway import metrics


class HeadDeadline:
    """``seconds`` is read at every sweep, so that a reload's new `server.header_timeout_seconds`
    applies at once (to the connections already waiting too)."""

    def __init__(
        self,
        server: web.Server,
        seconds: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._seconds = seconds
        self._clock = clock
        self._seen: dict[RequestHandler, float] = {}  # connections without a request yet
        self._heard: set[RequestHandler] = set()  # connections that sent a whole head
        make = server.request_factory

        def heard(message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
            self._heard.add(protocol)
            return make(message, payload, protocol, writer, task)

        server.request_factory = heard

    @property
    def waiting(self) -> int:
        """The connections being timed: seen, without a whole request head yet."""
        return len(self._seen)

    def sweep(self) -> int:
        """Close the connections past their deadline; how many were."""
        now, seconds = self._clock(), self._seconds()
        open_now = self._server.connections
        closed = 0
        for conn in open_now:
            if conn in self._heard or conn.transport is None:  # served, or closed already
                continue
            first_seen = self._seen.setdefault(conn, now)
            if now - first_seen >= seconds:
                conn.force_close()
                closed += 1
        alive = set(open_now)  # forget the connections that are gone
        self._heard &= alive
        self._seen = {c: t for c, t in self._seen.items() if c in alive and c not in self._heard}
        if closed:
            metrics.HEADER_TIMEOUTS.inc(closed)
        return closed

    async def run(self) -> None:
        """Sweep until cancelled."""
        while True:
            await asyncio.sleep(min(self._seconds() / 4, 1.0))
            self.sweep()
