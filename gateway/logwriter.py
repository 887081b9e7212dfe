"""Log lines written on a thread of their own, so a stdout nobody reads never stalls a request.

`put` (on the event loop) appends to a bounded in-memory queue and returns at once; the writer
thread writes what is queued, in order, with `os.write` on the file descriptor (never through
`sys.stdout`'s buffer, whose lock a blocked write would hold). When the queue is full, lines are
dropped and counted: `crm_gateway_log_lines_dropped_total`, and a `log_lines_dropped` warning
line, written as soon as the output moves again and then at most every `report_every` seconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from gateway import metrics

# A few MB of typical lines (~350 bytes): many seconds of a busy worker's logs, enough to ride
# out a log shipper's restart.
CAPACITY = 20_000
REPORT_EVERY_SECONDS = 10.0
# After writing, the writer lets lines gather this long before it sleeps again: a busy worker's
# lines then go out in batches, and `put` wakes the writer (a lock, a notify, a thread switch
# for the GIL) at most this often rather than once a line. Lines reach the output this much
# later at most.
LINGER_SECONDS = 0.005


class BackgroundWriter:
    def __init__(
        self,
        fd: int,
        *,
        report: Callable[[int], str | None],
        sinks: Sequence[Callable[[str], None]] = (),
        capacity: int = CAPACITY,
        report_every: float = REPORT_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fd = fd
        self._report = report  # the warning line for this many dropped lines
        self._sinks = sinks
        self._capacity = capacity
        self._report_every = report_every
        self._clock = clock
        # Lines, and flush markers (an Event the writer sets once it has written what was
        # queued before it). deque: append and popleft are atomic, no lock on the hot path.
        self._queue: deque[str | threading.Event] = deque()
        self._wake = threading.Event()
        # True while the writer sleeps or is about to: only then does `put` need to wake it.
        self._idle = False
        self._closing = False
        self.dropped = 0  # counted by `put` only
        self._lost = 0  # lines the writer could not write, counted by the writer only
        self._reported = 0
        self._last_report = -float("inf")
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def put(self, line: str) -> None:
        """Queue a line; never blocks. A full queue drops it (and counts it)."""
        if len(self._queue) >= self._capacity:
            self.dropped += 1
            metrics.LOG_LINES_DROPPED.inc()
            return
        self._queue.append(line)
        if self._idle:
            self._wake.set()

    def keep_everything(self) -> None:
        """No more drops: for the last lines of a process, when no request is left to stall."""
        self._capacity = sys.maxsize

    def flush(self, timeout: float) -> bool:
        """Wait until every line queued so far is written; False when `timeout` ran out."""
        done = threading.Event()
        self._queue.append(done)  # past the capacity: a marker, not a line
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float) -> bool:
        """Flush, then stop the thread. With a stalled output the thread is left blocked (it
        is a daemon: it ends with the process)."""
        flushed = self.flush(timeout)
        self._closing = True
        self._wake.set()
        if flushed:
            self._thread.join(timeout)
        return flushed

    def _run(self) -> None:
        while True:
            # Idle first, then look at the queue: a line appended before `put` read the flag is
            # seen here; one appended after it finds the flag set, and wakes the writer.
            self._idle = True
            if not self._queue and not self._closing:
                self._wake.wait(self._until_report())
            self._idle = False
            self._wake.clear()
            batch: list[str] = []
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, str):
                    batch.append(item)
                else:
                    self._write(batch)
                    batch = []
                    item.set()
            wrote = bool(batch)
            self._write(batch)
            self._report_drops()
            if self._closing and not self._queue:
                return
            if wrote and not self._closing:
                time.sleep(LINGER_SECONDS)

    def _until_report(self) -> float | None:
        """How long the writer may sleep: for ever, unless dropped lines wait to be reported."""
        if self.dropped + self._lost == self._reported:
            return None
        return max(0.0, self._last_report + self._report_every - self._clock())

    def _report_drops(self) -> None:
        dropped = self.dropped + self._lost - self._reported
        now = self._clock()
        if not dropped or now - self._last_report < self._report_every:
            return
        self._reported += dropped
        self._last_report = now
        line = self._report(dropped)
        if line is not None:
            self._write([line])

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        # A view, not slices: a backlog written to a slow pipe in 64 KB pieces is not copied.
        data = memoryview(("\n".join(lines) + "\n").encode("utf-8", "replace"))
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError:  # the reader is gone (EPIPE) or the descriptor closed: nothing to do
            self._lost += len(lines)
            metrics.LOG_LINES_DROPPED.inc(len(lines))
        for line in lines:
            for sink in self._sinks:
                with contextlib.suppress(Exception):  # a receiver must not stop the logs
                    sink(line)
