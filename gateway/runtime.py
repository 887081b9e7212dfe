"""What serves requests: the config, the mapping and everything built from them. A reload
builds a new Runtime (validating first) and swaps it in; each request keeps the Runtime it
started with, so requests in flight finish on their own config."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway import connect, expertflow, logs
from gateway.cache import Caches
from gateway.config import Config, load_config, secrets_of
from gateway.errors import ConfigError
from gateway.expertflow import Routing
from gateway.fleet.state import Fleet
from gateway.locks import LocalLocks
from gateway.mapping.codecs import Codecs, PhoneNumbers
from gateway.mapping.engine import Engine
from gateway.mapping.model import MappingSpec
from gateway.mapping.spec import load_mapping
from gateway.recall import LocalRecall
from gateway.upstream import Upstream
from gateway.upstream.call import Transport


@dataclass
class Runtime:
    config: Config
    mapping: MappingSpec
    upstream: Upstream
    caches: Caches
    engine: Engine
    routing: Routing | None


def build(
    config: Config,
    mapping: MappingSpec | None = None,
    *,
    transport: Transport | None = None,
    fleet: Fleet | None = None,
) -> Runtime:
    """Everything a config and its mapping make; raises ConfigError, touches no network.
    ``transport`` replaces HTTP to the upstream (`explain`'s dry run); ``fleet`` is the state
    shared with other processes and kept across reloads (none: this process on its own), such
    as the per-case locks and what creates made."""
    mapping = mapping or load_mapping(config.upstream.mapping)
    upstream = connect.upstream(config, mapping, transport, fleet=fleet)
    caches = Caches(config.cache)
    engine = Engine(
        mapping,
        upstream,
        caches,
        settings=config.settings,
        upstream_url=config.upstream.base_url,
        locks=fleet.locks if fleet is not None else LocalLocks(),
        recall=fleet.recall if fleet is not None else LocalRecall(),
        grace_seconds=config.upstream.attempt_timeout_seconds,
        codecs=Codecs(PhoneNumbers(config.phones.default_region)),
        limits=config.bestmatch,
    )
    routing = (
        Routing(engine, not_found=config.expertflow.not_found)
        if mapping.routing is not None
        else None
    )
    return Runtime(config, mapping, upstream, caches, engine, routing)


# What a restart is needed for: the routes and the listening socket are made once.
RESTART_ONLY = ("server.host", "server.port", "server.base_path", "expertflow.path_prefix",
                "shared_state")  # fmt: skip


class Holder:
    """The live Runtime of an app, swapped atomically by `reload`."""

    def __init__(self, runtime: Runtime, fleet: Fleet | None = None) -> None:
        self.current = runtime
        self.fleet = fleet
        self._lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()

    async def reload(self, config_file: str | Path) -> bool:
        """Load, validate and swap in the files as they are now. An invalid file is refused
        with a log line, and the running config keeps serving."""
        log = logs.get()
        async with self._lock:
            old = self.current
            try:
                config = load_config(config_file)
                new = build(config, fleet=self.fleet)
            except ConfigError as exc:
                # Each problem names file, line and key, never the file's content.
                log.error("reload_refused", config=str(config_file), problems=str(exc).splitlines())
                return False
            except Exception as exc:  # whatever a file holds, keep serving
                # Only the kind of failure: an exception's text may quote the file.
                problem = f"{type(exc).__name__} while loading"
                log.error("reload_refused", config=str(config_file), problems=[problem])
                return False
            for name in RESTART_ONLY:
                kept = _setting(old.config, name)
                if _setting(config, name) != kept:
                    log.warning("reload_needs_restart", setting=name, kept=kept)
            await new.upstream.start()
            self.current = new
            _apply_logging(config)
            log = logs.get()
            expertflow.warn_about_access(config)
            # Requests in flight still use the old upstream client: close it after they can
            # have finished (their budget is the longest they run).
            task = asyncio.create_task(_retire(old, old.config.deadlines.budget("meta") + 1))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
            log.info("reloaded", config=config.file, mapping=str(config.upstream.mapping))
            return True

    async def close(self) -> None:
        for task in list(self._retired):
            task.cancel()
        await self.current.upstream.close()


def _setting(config: Config, dotted: str) -> object:
    found: object = config
    for name in dotted.split("."):
        found = getattr(found, name)
    return found


def _apply_logging(config: Config) -> None:
    """The new level, format and PII setting; secrets already known stay redacted (a key
    just removed from the config is still a secret, and so are tokens learned at run time)."""
    secrets = [*logs.redactor.secrets, *secrets_of(config)]
    logs.configure(
        config.logging.level, config.logging.format, secrets=secrets, pii=config.logging.pii
    )


def _stamp(*files: Path) -> tuple[tuple[int, int], ...]:
    out = []
    for f in files:
        try:
            st = f.stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((0, 0))
    return tuple(out)


async def watch(holder: Holder, config_file: str | Path, every: float) -> None:
    """Reload when the config file or the live mapping file changes."""

    def files() -> tuple[Path, Path]:
        return Path(config_file), holder.current.config.upstream.mapping

    seen = _stamp(*files())
    while True:
        await asyncio.sleep(every)
        now = _stamp(*files())
        if now != seen:
            try:
                await holder.reload(config_file)
            except Exception as exc:  # the watcher outlives any one file
                logs.get().error("reload_failed", error=type(exc).__name__)
            seen = _stamp(*files())  # refused or not, this version has been looked at


async def _retire(runtime: Runtime, after: float) -> None:
    try:
        await asyncio.sleep(after)
    finally:
        await runtime.upstream.close()


HOLDER: web.AppKey[Holder] = web.AppKey("runtime", Holder)
_REQUEST_KEY = "crm_gateway_runtime"


def pin(request: web.Request) -> Runtime:
    """The Runtime this request uses from start to end."""
    runtime: Runtime = request.app[HOLDER].current
    request[_REQUEST_KEY] = runtime
    return runtime


def of(request: web.Request) -> Runtime:
    runtime: Runtime | None = request.get(_REQUEST_KEY)
    return runtime if runtime is not None else pin(request)
