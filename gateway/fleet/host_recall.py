"""What creates made, remembered across the workers of one host without Redis
(docs/behaviour.md §5): a repeat through any worker finds the case or customer the first
create made, also on a CRM without idempotency keys.

The entries are rows of one SQLite database in the supervisor's state directory (the standard
library's sqlite3): each write is a transaction, so another worker reads an entry whole or not
at all; a worker killed mid-write leaves the database as it was; and expired entries go with
a `DELETE` in the same transaction as each new one, so the database holds no more than what
the time to live keeps (files of their own would need a lock of their own to delete an expired
one safely, since a fresh entry may replace it meanwhile). Expiry is on the host's monotonic
clock, which all its processes share (the directory does not outlive the supervisor).

SQLite waits while another worker writes, so its calls run on a thread of their own, never
on the event loop. A read waits at most what is left of the request's budget (then 504: not
knowing is not "never made"); a write is made even past it, as with Redis. Each entry is also
kept in this process, found while the host's files fail, and when they work again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway import deadline
from gateway.errors import DeadlineExceeded
from gateway.fleet.host_files import HostFiles
from gateway.recall import LocalRecall, shared_or_local
from gateway.upstream.clock import SYSTEM, Clock

T = TypeVar("T")

FILE = "recall.sqlite3"
BUSY_SECONDS = 2.0  # the longest one call waits for another worker's write
FAILURES = (sqlite3.Error, OSError)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recall (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS recall_expiry ON recall (expires_at);
"""


class HostRecall:
    def __init__(self, files: HostFiles, clock: Clock = SYSTEM) -> None:
        self.files, self.clock = files, clock
        self.local = LocalRecall()
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # the database file it is connected to
        # One thread: the connection stays on it, and a busy database holds up no other work
        # of the default executor (DNS lookups).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="host-recall")

    @property
    def path(self) -> Path:
        return self.files.directory / "recall" / FILE

    async def get(self, key: str) -> Any | None:
        left = deadline.left()
        try:
            async with asyncio.timeout(None if left is None else max(left, 0.0)):
                text = await self._run("recall_get", lambda db: _get(db, key, self._now()))
        except TimeoutError:
            raise DeadlineExceeded(
                detail="the request's budget ran out while reading the host's memory"
            ) from None
        except FAILURES:
            return await self.local.get(key)
        return await shared_or_local(text, self.local, key, "host_recall_unreadable")

    async def put(self, key: str, value: Any, ttl_seconds: float) -> None:
        await self.local.put(key, value, ttl_seconds)
        text, now = json.dumps(value), self._now()
        with contextlib.suppress(*FAILURES):  # said by `_run`; kept in this process
            await self._run(
                "recall_put", lambda db: _put(db, key, text, now, now + ttl_seconds), whole=True
            )

    async def forget(self, key: str) -> None:
        await self.local.forget(key)
        with contextlib.suppress(*FAILURES):
            await self._run("recall_forget", lambda db: _forget(db, key), whole=True)

    def _now(self) -> float:
        return self.clock.monotonic()

    async def _run(
        self, operation: str, call: Callable[[sqlite3.Connection], T], *, whole: bool = False
    ) -> T:
        """``call`` on the database, on this recall's thread; a failure is said (once) and
        raised. ``whole``: a write, finished even when its caller is cancelled meanwhile, since
        the caller holds the key's lock and the next holder must find what it wrote."""

        def job() -> T:
            return call(self._connected())

        done = asyncio.get_running_loop().run_in_executor(self._thread, job)
        try:
            result = await asyncio.shield(done)
        except asyncio.CancelledError:
            if whole:
                with contextlib.suppress(*FAILURES):
                    await done
            raise
        except FAILURES as exc:
            self.files.failed(operation, exc)
            if self._db is not None:  # a fresh connection next time (the file may be new)
                self._thread.submit(self._close)
            raise
        self.files.worked()
        return result

    def _connected(self) -> sqlite3.Connection:
        """The connection to the database now at the path, made on first use (on the thread).
        A cleaner of temporary files may delete an idle one: every worker then follows the
        path to the new one, rather than each keeping a copy of its own."""
        if self._db is not None and _identity(self.path) != self._file:
            self._close()
        if self._db is None:
            self.files.place("recall")
            db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
            try:
                # The database lives as long as the supervisor: no fsync (a killed process
                # still leaves it whole; only a crash of the host could lose the last writes,
                # and the directory does not survive that). A rollback journal, which exists
                # only during a write, rather than WAL's files, which live as long as the
                # database and must not be deleted under it.
                db.execute("PRAGMA journal_mode=DELETE")
                db.execute("PRAGMA synchronous=OFF")
                db.executescript(_SCHEMA)
            except BaseException:
                db.close()
                raise
            self._db, self._file = db, _identity(self.path)
        return self._db

    def _close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino


def _get(db: sqlite3.Connection, key: str, now: float) -> str | None:
    row = db.execute(
        "SELECT value FROM recall WHERE key = ? AND expires_at > ?", (key, now)
    ).fetchone()
    return None if row is None else str(row[0])


def _put(db: sqlite3.Connection, key: str, text: str, now: float, expires_at: float) -> None:
    db.execute("BEGIN IMMEDIATE")  # one transaction: the entry, and the expired ones gone
    try:
        db.execute(
            "INSERT INTO recall (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            (key, text, expires_at),
        )
        db.execute("DELETE FROM recall WHERE expires_at <= ?", (now,))
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled it back itself (a full disk)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _forget(db: sqlite3.Connection, key: str) -> None:
    db.execute("DELETE FROM recall WHERE key = ?", (key,))
