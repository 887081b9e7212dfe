"""Serving: one process (an event loop, uvloop when installed), or a supervisor that runs N
worker processes. The supervisor binds the port once and hands the listening socket to its
workers, so a second instance on the same port fails to start rather than sharing it. It also
shares their metrics through a Prometheus multiprocess directory, relays cache purges between
them, gives them a private directory for what they share (the OAuth tokens, a write lock per
case, what creates made), passes SIGTERM on and restarts a worker that dies. Every process that
serves closes connections that do not send a request head in time (`gateway.connections`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from gateway import collector, logs, reloading, shipped, signals
from gateway.app import create_app
from gateway.config import Config
from gateway.connections import HeadDeadline
from gateway.fleet import state as fleet_state
from gateway.fleet.relay import Relay

RESTARTS = 5  # a worker that dies this often within a minute stops the whole server


def run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


class PortInUse(Exception):
    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"cannot listen on {host}:{port}: {reason} (is another crm-gateway serving there?)"
        )


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound once (no SO_REUSEPORT: a port is one gateway's)."""
    try:
        return socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        raise PortInUse(host, port, exc.strerror or str(exc)) from None


async def serve(
    config: Config,
    sock: socket.socket,
    *,
    worker: bool = False,
    line: socket.socket | None = None,
    state_dir: str | None = None,
) -> None:
    """Serve on ``sock`` until SIGTERM or SIGINT, then drain: see `_drain`. A worker has a
    ``line`` to its supervisor and the supervisor's ``state_dir``."""
    # The signals first, before anything slow: one that comes during the set-up stops (or
    # reloads) the process once it is set up, and one caught before (`signals`) too.
    stop, hurry = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    holder: reloading.Holder | None = None
    reloads: set[asyncio.Task[bool]] = set()
    reload_asked = False

    def signalled(sig: signal.Signals) -> None:
        if sig == signal.SIGINT or stop.is_set():
            hurry.set()  # Ctrl-C, or a second signal: no pause
        stop.set()

    def reload() -> None:
        nonlocal reload_asked
        if holder is None:  # the files may have changed since they were read: once set up
            reload_asked = True
            return
        task = asyncio.create_task(holder.reload(config.file))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signalled, sig)
    loop.add_signal_handler(signal.SIGHUP, reload)
    for sig in signals.caught():
        if sig == signal.SIGHUP:
            reload()
        else:  # asked to stop before it could serve: no pause for load balancers
            hurry.set()
            stop.set()
    fleet = fleet_state.build(
        config, host=line, state_dir=Path(state_dir) if state_dir is not None else None
    )
    app = create_app(config, fleet=fleet)
    live = app[reloading.HOLDER]
    limit = creates_seconds(config)

    async def creates_done(app: web.Application) -> None:
        await _creates_done(live, limit)

    # Once the requests are done, before the upstream's connections close (the first cleanup).
    app.on_cleanup.insert(0, creates_done)
    meta = config.deadlines.budget("meta")
    # aiohttp's own keep-alive default is an hour: a connection that sent one request could
    # then send its next head a line now and then for that long (docs/behaviour.md §6.3).
    keepalive = config.server.keepalive_timeout_seconds
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=meta, keepalive_timeout=keepalive)
    await runner.setup()
    assert runner.server is not None  # made by setup()
    # A reload's header timeout applies at once.
    heads = HeadDeadline(runner.server, lambda: live.current.config.server.header_timeout_seconds)
    collector.settle()
    await web.SockSite(runner, sock).start()
    sweeping = asyncio.create_task(heads.run())
    logs.get().info(
        "started",
        version=shipped.version(),
        url=f"http://{config.server.host}:{config.server.port}{config.server.base_path}",
        config=config.file,
        mapping=str(config.upstream.mapping),
        upstream=config.upstream.base_url,
        pid=os.getpid(),
        loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
    )
    reloading.warn_about_access(config)
    holder = live  # from now on a SIGHUP reloads at once
    if reload_asked:
        reload()
    watch = asyncio.create_task(_orphaned(stop)) if worker else None
    try:
        await stop.wait()
        await _drain(holder, config.server.drain_delay_seconds, hurry)
    finally:
        sweeping.cancel()
        if watch is not None:
            watch.cancel()
        await runner.cleanup()
        logs.shutting_down()
        logs.get().info("stopped", pid=os.getpid())


async def _drain(holder: reloading.Holder, delay: float, hurry: asyncio.Event) -> None:
    """`/readyz` answers 503 from now on, and for `server.drain_delay_seconds` requests (new
    ones too) are still served, so that load balancers see it and send no more; then the
    process stops listening and lets requests in flight finish within their budget. A SIGINT,
    or a second signal, ends the pause."""
    holder.current.lifecycle.draining = True
    logs.get().info("draining", pid=os.getpid(), delay_seconds=delay)
    if delay > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hurry.wait(), delay)


def creates_seconds(config: Config) -> float:
    """The longest a create may run: its request's budget, and past its caller's deadline the
    grace of one attempt's time (docs/behaviour.md §1.4), and a second to write what it made."""
    return config.deadlines.budget("default") + config.upstream.attempt_timeout_seconds + 1.0


async def _creates_done(holder: reloading.Holder, limit: float) -> None:
    """Creates still running when the requests are done (their callers' deadlines passed;
    they run on for their grace) end before the process does, so that what they made is known
    and remembered, rather than left as an unknown outcome: at most ``limit``."""
    current = holder.current
    running = [*current.customers.in_flight(), *current.cases.in_flight()]
    if not running:
        return
    logs.get().info("draining_creates", pid=os.getpid(), creates=len(running))
    await asyncio.wait(running, timeout=limit)


async def _orphaned(stop: asyncio.Event) -> None:
    """A worker whose supervisor has gone stops too, rather than serving on unwatched."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    logs.get().error("supervisor_gone", pid=os.getpid())
    stop.set()


def supervise(config: Config, workers: int, sock: socket.socket) -> int:
    """Run `workers` processes of `crm-gateway serve --worker` on ``sock`` and watch them."""
    log = logs.get()
    procs: list[subprocess.Popen[bytes]] = []
    told: set[int] = set()  # the workers sent SIGTERM
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
                told.add(p.pid)

    # The signals first: a stop that came before (`signals`) starts no worker at all.
    signal.signal(signal.SIGHUP, hup)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if any(s != signal.SIGHUP for s in signals.caught()):
        stopping = True
    metrics_dir = tempfile.mkdtemp(prefix="crm-gateway-metrics-")
    state_dir = tempfile.mkdtemp(prefix="crm-gateway-state-")  # 0700: gateway.fleet.host_files
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    relay = Relay()

    def start() -> subprocess.Popen[bytes]:
        line = relay.line()
        command = [
            sys.executable, "-m", "gateway", "serve", "--worker", "--config", config.file,
            "--listen-fd", str(sock.fileno()),
            "--line-fd", str(line.fileno()), "--state-dir", state_dir,
        ]  # fmt: skip
        # What beat the file here beats it in the worker (at its reloads too), and only that.
        if config.listen.host:
            command += ["--host", config.listen.host]
        if config.listen.port is not None:
            command += ["--port", str(config.listen.port)]
        try:
            # Started with the signals held back: it gets them once it catches them itself.
            with signals.blocked():
                return subprocess.Popen(command, env=env, pass_fds=(sock.fileno(), line.fileno()))
        finally:
            line.close()  # the worker has its own copy

    for _ in range(workers):
        if stopping:
            break
        procs.append(start())
    if procs:
        log.info("supervisor_started", workers=workers, pids=[p.pid for p in procs])
    deaths: list[float] = []
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
                procs[i] = start()
            relay.poll(0.2)
        for p in procs:  # started as the stop came, and so not told yet
            if p.pid not in told and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        pause = config.server.drain_delay_seconds  # the workers serve on, unready, this long
        # A worker lets requests in flight finish (at most the meta budget), and creates run
        # on past their callers' deadlines for their grace (`creates_seconds`).
        slowest = max(config.deadlines.budget("meta"), creates_seconds(config))
        deadline = time.monotonic() + pause + slowest + 5
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    finally:
        relay.close()
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
        shutil.rmtree(state_dir, ignore_errors=True)
    logs.shutting_down()
    log.info("supervisor_stopped", code=code)
    return code


def _mark_dead(pid: int, metrics_dir: str) -> None:
    """Drop a dead worker's live gauges; its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]
