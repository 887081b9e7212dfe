"""Connections that do not send a whole request head in time are closed (slowloris)."""

from __future__ import annotations

from typing import Any

from gateway.connections import HeadDeadline

# -- the sweep, on a fake server and a clock of the test's --------------------------------------


class FakeConnection:
    def __init__(self) -> None:
        self.transport: object | None = object()
        self.closes = 0

    def force_close(self) -> None:
        self.closes += 1
        self.transport = None


class FakeServer:
    """What `HeadDeadline` uses of aiohttp's `web.Server`."""

    def __init__(self) -> None:
        self.connections: list[FakeConnection] = []
        self.made: list[Any] = []

    def request_factory(
        self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> Any:
        self.made.append(message)
        return "request"


def test_sweep_closes_the_connections_without_a_head_past_their_deadline() -> None:
    server, now = FakeServer(), [100.0]
    deadline = HeadDeadline(server, lambda: 10.0, clock=lambda: now[0])
    silent, served, late = FakeConnection(), FakeConnection(), FakeConnection()
    server.connections += [silent, served]
    assert deadline.sweep() == 0 and deadline.waiting == 2  # first seen at 100
    # A whole head read: the request is still made by the server's own factory.
    assert server.request_factory("head", None, served, None, None) == "request"
    assert server.made == ["head"]
    now[0] = 105.0
    server.connections.append(late)
    assert deadline.sweep() == 0 and deadline.waiting == 2  # served is no longer timed
    now[0] = 109.9
    assert deadline.sweep() == 0
    now[0] = 110.0  # the silent one's deadline
    assert deadline.sweep() == 1
    assert (silent.closes, served.closes, late.closes) == (1, 0, 0)
    now[0] = 114.0  # closed already, not closed (nor counted) again while it is still listed
    assert deadline.sweep() == 0 and silent.closes == 1
    server.connections.remove(silent)
    now[0] = 115.0
    assert deadline.sweep() == 1 and late.closes == 1
    now[0] = 1000.0  # a served connection is never timed again, however long it stays
    assert deadline.sweep() == 0 and served.closes == 0
    server.connections.clear()
    assert deadline.sweep() == 0 and deadline.waiting == 0  # the gone are forgotten


def test_the_deadline_is_read_at_every_sweep() -> None:
    """A reload's new `server.header_timeout_seconds` applies to the connections waiting."""
    server, now, seconds = FakeServer(), [0.0], [10.0]
    deadline = HeadDeadline(server, lambda: seconds[0], clock=lambda: now[0])
    conn = FakeConnection()
    server.connections.append(conn)
    deadline.sweep()
    now[0] = 3.0
    assert deadline.sweep() == 0
    seconds[0] = 2.0
    assert deadline.sweep() == 1 and conn.closes == 1
