"""Serving: one process (an event loop, uvloop when installed), or a supervisor that runs N
worker processes on one port (SO_REUSEPORT), shares their metrics through a Prometheus
multiprocess directory, passes SIGTERM on and restarts a worker that dies."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from gateway import expertflow, logs, runtime, shipped
from gateway.app import create_app
from gateway.config import Config
from gateway.sandbox.demo import seed
from gateway.sandbox.server import create_sandbox
from gateway.sandbox.store import Store

RESTARTS = 5  # a worker that dies this often within a minute stops the whole server


def run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def serve(config: Config, *, sandbox_port: int | None = None, worker: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, then let requests in flight finish within their budget."""
    runners = []
    if sandbox_port is not None:
        store = seed(Store(base_url=f"http://127.0.0.1:{sandbox_port}"))
        sandbox = web.AppRunner(create_sandbox(store), access_log=None)
        await sandbox.setup()
        await web.TCPSite(sandbox, "127.0.0.1", sandbox_port).start()
        runners.append(sandbox)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.meta_budget)
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port, reuse_port=worker or None).start()
    runners.append(runner)
    logs.get().info(
        "started",
        version=shipped.version(),
        url=f"http://{config.host}:{config.port}{config.base_path}",
        config=config.file,
        mapping=str(config.mapping_file),
        upstream=config.upstream_url,
        pid=os.getpid(),
        loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
    )
    expertflow.warn_about_access(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    holder = app[runtime.HOLDER]
    reloads: set[asyncio.Task[bool]] = set()

    def reload() -> None:
        task = asyncio.create_task(holder.reload(config.file))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    watch = asyncio.create_task(_orphaned(stop)) if worker else None
    try:
        await stop.wait()
    finally:
        if watch is not None:
            watch.cancel()
        for r in reversed(runners):
            await r.cleanup()
        logs.shutting_down()
        logs.get().info("stopped", pid=os.getpid())


async def _orphaned(stop: asyncio.Event) -> None:
    """A worker whose supervisor has gone stops too, rather than serving on unwatched."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    logs.get().error("supervisor_gone", pid=os.getpid())
    stop.set()


def supervise(config: Config, workers: int) -> int:
    """Run `workers` processes of `crm-gateway serve --worker` and watch them."""
    log = logs.get()
    metrics_dir = tempfile.mkdtemp(prefix="crm-gateway-metrics-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    command = [
        sys.executable, "-m", "gateway", "serve", "--worker", "--config", config.file,
        "--host", config.host, "--port", str(config.port),
    ]  # fmt: skip
    procs = [subprocess.Popen(command, env=env) for _ in range(workers)]
    deaths: list[float] = []
    stopping = False

    def hup(signum: int, frame: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGHUP)

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("supervisor_started", workers=workers, pids=[p.pid for p in procs])
    code = 0
    try:
        while not stopping:
            for i, p in enumerate(procs):
                if p.poll() is None:
                    continue
                _mark_dead(p.pid, metrics_dir)
                deaths = [t for t in deaths if time.monotonic() - t < 60] + [time.monotonic()]
                log.error("worker_exited", pid=p.pid, code=p.returncode, restarts=len(deaths))
                if len(deaths) >= RESTARTS:
                    code = 1
                    stop(signal.SIGTERM, None)
                    break
                procs[i] = subprocess.Popen(command, env=env)
            time.sleep(0.2)
        deadline = time.monotonic() + config.meta_budget + 5
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    logs.shutting_down()
    log.info("supervisor_stopped", code=code)
    return code


def _mark_dead(pid: int, metrics_dir: str) -> None:
    """Drop a dead worker's live gauges; its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]
