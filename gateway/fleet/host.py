"""A worker's line to its supervisor (`serve --workers N`): the way a cache purge reaches the
other workers of this host without Redis. Newline-delimited JSON over a socket pair the
supervisor made: {"op": "purge", "id", "names"} both ways, {"op": "purged", "id"} when a
worker has emptied its caches, {"op": "done", "id", "processes"} to the worker that asked, once
every worker has (see `gateway.fleet.relay`)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

from gateway import deadline, logs
from gateway.fleet.purges import ACK_SECONDS, Purge


class HostChannel:
    def __init__(self, sock: socket.socket, purge: Purge) -> None:
        self.sock, self.purge = sock, purge
        self._writer: asyncio.StreamWriter | None = None
        self._waiting: dict[str, asyncio.Future[int]] = {}

    async def listen(self) -> None:
        """Run until cancelled or until the supervisor has gone."""
        reader, self._writer = await asyncio.open_connection(sock=self.sock)
        try:
            while line := await reader.readline():
                try:
                    message: Any = json.loads(line)
                    op, purge_id = message["op"], str(message["id"])
                except (ValueError, KeyError, TypeError):
                    logs.get().warning("host_message_unreadable")
                    continue
                if op == "purge":
                    names = message.get("names")
                    self.purge(names if isinstance(names, list) else None)
                    await self._send({"op": "purged", "id": purge_id})
                elif op == "done" and purge_id in self._waiting:
                    self._waiting.pop(purge_id).set_result(int(message.get("processes", 1)))
        finally:
            self._writer.close()
            self._writer = None

    async def publish(self, names: list[str]) -> int:
        """Ask the supervisor to purge ``names`` in the other workers; answers how many
        processes of this host (this one included) have emptied them."""
        if self._writer is None:
            return 1
        purge_id = os.urandom(8).hex()
        done = self._waiting[purge_id] = asyncio.get_running_loop().create_future()
        left = deadline.left()
        wait = ACK_SECONDS + 0.5 if left is None else max(min(ACK_SECONDS + 0.5, left), 0.0)
        try:
            await self._send({"op": "purge", "id": purge_id, "names": names})
            return await asyncio.wait_for(done, wait)
        except (TimeoutError, OSError):
            logs.get().warning("host_purge_unconfirmed", caches=names)
            return 1
        finally:
            self._waiting.pop(purge_id, None)

    async def _send(self, message: dict[str, Any]) -> None:
        if self._writer is None:
            raise ConnectionResetError("the supervisor's line is closed")
        self._writer.write(json.dumps(message).encode() + b"\n")
        await self._writer.drain()
