"""The supervisor's side of the workers' lines (see `gateway.fleet.host`): a purge one worker
asks for is sent to every other worker, and the asker hears back once all have emptied their
caches, or after `ACK_SECONDS` with as many as had. Runs in the supervisor's own loop, which
polls it instead of sleeping."""

from __future__ import annotations

import json
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from gateway import logs
from gateway.fleet.purges import ACK_SECONDS

SEND_TIMEOUT_SECONDS = 0.5  # a worker that stops reading does not stop the supervisor


@dataclass
class _Round:
    origin: socket.socket
    waiting: set[socket.socket]
    started: float
    reached: int = 1  # the asker purged its own caches first


@dataclass
class Relay:
    _selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    _buffers: dict[socket.socket, bytes] = field(default_factory=dict)
    _rounds: dict[str, _Round] = field(default_factory=dict)

    def line(self) -> socket.socket:
        """A new worker's line: the end to hand to the worker (it is inheritable)."""
        ours, theirs = socket.socketpair()
        ours.settimeout(SEND_TIMEOUT_SECONDS)
        theirs.set_inheritable(True)
        self._buffers[ours] = b""
        self._selector.register(ours, selectors.EVENT_READ)
        return theirs

    def poll(self, seconds: float) -> None:
        """Relay what arrives within ``seconds``; close the rounds that waited long enough."""
        for key, _ in self._selector.select(seconds):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._drop(sock)  # that worker has gone (it is replaced with a new line)
                continue
            buffer = self._buffers[sock] + data
            *lines, self._buffers[sock] = buffer.split(b"\n")
            for line in lines:
                self._handle(sock, line)
        now = time.monotonic()
        for purge_id, round_ in list(self._rounds.items()):
            if now - round_.started >= ACK_SECONDS:
                self._finish(purge_id)

    def _handle(self, sock: socket.socket, line: bytes) -> None:
        try:
            message: Any = json.loads(line)
            op, purge_id = message["op"], str(message["id"])
        except (ValueError, KeyError, TypeError):
            logs.get().warning("host_message_unreadable")
            return
        if op == "purge":
            forward = {"op": "purge", "id": purge_id, "names": message.get("names")}
            others = [s for s in self._buffers if s is not sock]
            waiting = {other for other in others if self._send(other, forward)}
            self._rounds[purge_id] = _Round(sock, waiting, time.monotonic())
            if not waiting:
                self._finish(purge_id)
        elif op == "purged" and purge_id in self._rounds:
            round_ = self._rounds[purge_id]
            if sock in round_.waiting:
                round_.waiting.discard(sock)
                round_.reached += 1
            if not round_.waiting:
                self._finish(purge_id)

    def _finish(self, purge_id: str) -> None:
        round_ = self._rounds.pop(purge_id)
        if round_.waiting:
            logs.get().warning("host_purge_unconfirmed", missing=len(round_.waiting))
        self._send(round_.origin, {"op": "done", "id": purge_id, "processes": round_.reached})

    def _send(self, sock: socket.socket, message: dict[str, Any]) -> bool:
        if sock not in self._buffers:
            return False
        try:
            sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            self._drop(sock)
            return False
        return True

    def _drop(self, sock: socket.socket) -> None:
        if sock not in self._buffers:
            return
        del self._buffers[sock]
        self._selector.unregister(sock)
        sock.close()
        for purge_id, round_ in list(self._rounds.items()):
            round_.waiting.discard(sock)
            if round_.origin is sock:
                del self._rounds[purge_id]
            elif not round_.waiting:
                self._finish(purge_id)

    def close(self) -> None:
        for sock in list(self._buffers):
            self._drop(sock)
        self._selector.close()
