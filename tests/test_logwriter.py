"""Logging that cannot stall a request: lines go through a bounded queue to a writer thread; when
the output stalls, lines are dropped and counted, and requests are answered as before."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from conftest import free_port, gateway, gateway_env, wait_for

from gateway import logs, metrics
from gateway.logwriter import BackgroundWriter

LINE = "x" * 1000  # 66 of these fill a Linux pipe (64 KB)


def dropped_total() -> float:
    return metrics.LOG_LINES_DROPPED._value.get()  # type: ignore[attr-defined,no-any-return]


class Pipe:
    """An OS pipe, and a reader that reads it (when started) until the write end is closed."""

    def __init__(self) -> None:
        self.read, self.write = os.pipe()
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)

    def _read(self) -> None:
        while chunk := os.read(self.read, 1 << 16):
            self._chunks.append(chunk)

    def start_reading(self) -> None:
        self._reader.start()

    def close_write(self) -> None:
        if self.write >= 0:
            os.close(self.write)
            self.write = -1

    def lines(self) -> list[str]:
        """Everything written, once the write end is closed."""
        self.close_write()
        if not self._reader.is_alive() and not self._chunks:
            self._reader.start()
        self._reader.join(20)
        return b"".join(self._chunks).decode().splitlines()

    def close(self) -> None:
        self.close_write()
        if self.read >= 0:
            os.close(self.read)
            self.read = -1


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    made = Pipe()
    yield made
    made.close()


def put_all(writer: BackgroundWriter, lines: list[str]) -> None:
    """Put from another thread: if `put` ever blocked, the test fails instead of hanging."""
    done = threading.Thread(target=lambda: [writer.put(x) for x in lines], daemon=True)
    done.start()
    done.join(30)
    assert not done.is_alive(), "put blocked on a stalled output"


def test_lines_are_written_in_order_and_reach_the_sinks(pipe: Pipe) -> None:
    seen: list[str] = []
    writer = BackgroundWriter(pipe.write, report=lambda n: None, sinks=[seen.append])
    pipe.start_reading()
    lines = [f"line {i}" for i in range(5000)]
    put_all(writer, lines)
    assert writer.close(10)
    assert pipe.lines() == lines
    assert seen == lines


def test_a_stalled_output_drops_and_counts_lines_and_never_blocks(pipe: Pipe) -> None:
    before = dropped_total()
    writer = BackgroundWriter(
        pipe.write,
        report=lambda n: json.dumps({"event": "log_lines_dropped", "dropped": n}),
        capacity=100,
    )
    lines = [f"{i} {LINE}" for i in range(1000)]
    put_all(writer, lines)  # nobody reads: the pipe fills, then the queue
    assert not writer.flush(0.2)  # it cannot be written now ...
    dropped = dropped_total() - before
    assert dropped == writer.dropped > 0
    pipe.start_reading()  # ... and once the reader is back, it is
    assert writer.close(10)
    out = pipe.lines()
    (report,) = [json.loads(x) for x in out if x.startswith("{")]
    assert report == {"event": "log_lines_dropped", "dropped": dropped}
    written = [x for x in out if not x.startswith("{")]
    assert len(written) + dropped == len(lines)
    # The first lines, in order, as many as the pipe and the queue held: the rest was dropped.
    assert written == lines[: len(written)]
    assert len(written) >= 100  # at least what the queue held


def test_drops_are_reported_at_most_once_a_period(pipe: Pipe) -> None:
    now = [0.0]
    reports: list[int] = []

    def report(n: int) -> str:
        reports.append(n)
        return f"dropped {n}"

    writer = BackgroundWriter(
        pipe.write, report=report, capacity=0, report_every=10, clock=lambda: now[0]
    )
    pipe.start_reading()
    writer.put("a")  # no room at all: dropped, and reported at the writer's next round
    writer.flush(10)
    writer.put("b")
    writer.put("c")
    writer.flush(10)
    assert reports == [1]  # these two wait for the period to end
    now[0] = 10.0
    writer.flush(10)
    assert reports == [1, 2]
    writer.close(10)
    assert pipe.lines() == ["dropped 1", "dropped 2"]


def test_the_last_lines_of_a_process_are_kept_whatever_the_queue_holds(pipe: Pipe) -> None:
    writer = BackgroundWriter(pipe.write, report=lambda n: None, capacity=1)
    put_all(writer, [LINE] * 100)  # the pipe is full, and the queue
    writer.keep_everything()  # as logs.shutting_down() does
    writer.put("stopped")
    pipe.start_reading()
    assert writer.close(10)
    assert pipe.lines()[-1] == "stopped"


def test_a_vanished_reader_costs_lines_not_the_writer(pipe: Pipe) -> None:
    os.close(pipe.read)  # EPIPE from now on
    pipe.read = -1
    before = dropped_total()
    writer = BackgroundWriter(pipe.write, report=lambda n: None)
    put_all(writer, ["a", "b"])
    assert writer.flush(10)
    assert dropped_total() - before == 2
    put_all(writer, ["c"])
    assert writer.close(10)
    assert dropped_total() - before == 3


def test_python_logging_goes_through_the_writer_redacted(pipe: Pipe) -> None:
    logs.configure("info", "json", secrets=["python-log-secret"])
    logs.start_writer(pipe.write)
    pipe.start_reading()
    try:
        logging.getLogger("aiohttp.server").error("Error handling request: python-log-secret")
        logs.get().info("after")
    finally:
        assert logs.stop_writer(10)
    assert logs._FORWARD not in logging.getLogger().handlers  # stopped: the handler is gone
    out = [json.loads(x) for x in pipe.lines()]
    assert [x["event"] for x in out] == ["python_log", "after"]
    assert out[0]["logger"] == "aiohttp.server" and out[0]["level"] == "error"
    assert out[0]["message"] == "Error handling request: [secret]"


# -- a real gateway whose stdout is a pipe nobody reads --


def get(url: str) -> tuple[int, float]:
    start = time.monotonic()
    request = urllib.request.Request(url, headers={"Authorization": "test-key-1"})
    with urllib.request.urlopen(request, timeout=30) as r:
        r.read()
        return r.status, time.monotonic() - start


def test_a_full_stdout_pipe_stalls_no_request(processes: list[subprocess.Popen[bytes]]) -> None:
    sandbox_port, port = free_port(), free_port()
    processes.append(gateway("sandbox", "--port", str(sandbox_port), quiet=True))
    env = gateway_env(f"http://127.0.0.1:{sandbox_port}", GATEWAY_LOG_QUEUE_LINES="200")
    # Its output is a pipe this test does not read (until the end): after some 100 requests
    # the pipe is full, after some 200 more the queue is.
    proc = gateway("serve", "--config", "config.example.yaml", "--port", str(port), env=env)
    processes.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz")
    answers = [get(f"{base}/api/v1/customer/1001") for _ in range(600)]
    assert {status for status, _ in answers} == {200}
    assert max(took for _, took in answers) < 7.2  # inside the request's budget
    metrics_text = wait_for(f"{base}/metrics").decode()
    (dropped,) = [
        float(x.split()[1])
        for x in metrics_text.splitlines()
        if x.startswith("crm_gateway_log_lines_dropped_total ")
    ]
    assert dropped > 0  # the queue was full: the pipe really was stalled

    # The reader comes back: the queue drains, the drops are reported, shutdown flushes.
    out: list[bytes] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))  # type: ignore[union-attr]
    reader.start()
    proc.terminate()
    assert proc.wait(30) == 0
    processes.remove(proc)
    reader.join(10)
    events = [json.loads(x) for x in out[0].splitlines() if x.startswith(b"{")]
    reports = [e for e in events if e["event"] == "log_lines_dropped"]
    assert reports and reports[0]["level"] == "warning"
    assert sum(e["dropped"] for e in reports) >= dropped
    assert events[0]["event"] == "started" and events[-1]["event"] == "stopped"


def test_a_stalled_reader_does_not_keep_the_gateway_from_stopping(
    processes: list[subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    env = gateway_env("http://127.0.0.1:9", GATEWAY_LOG_QUEUE_LINES="100")
    proc = gateway("serve", "--config", "config.example.yaml", "--port", str(port), env=env)
    processes.append(proc)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    for _ in range(500):  # a line each: the pipe is full and the queue too
        get(f"http://127.0.0.1:{port}/healthz")
    proc.terminate()
    # Queued lines get 2 s to be written; then the process exits regardless, and cleanly.
    assert proc.wait(30) == 0
    processes.remove(proc)
