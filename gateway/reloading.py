"""The live Runtime of an app, and reloads: a reload loads and validates the files first, builds a
new Runtime and swaps it in; each request keeps the Runtime it started with (`pin`), so requests
in flight finish on their own config."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from gateway import collector, logs, runtime
from gateway.config import Config, Listen, load_config, secrets_of
from gateway.errors import ConfigError
from gateway.mapping.model import MappingSpec
from gateway.mapping.spec import load_mapping
from gateway.runtime import Runtime


def load(config_file: str | Path) -> Runtime:
    """The Runtime the files make as they are now; raises ConfigError."""
    config, mapping = load_files(config_file)
    return runtime.build(config, mapping)


def load_files(config_file: str | Path, listen: Listen | None = None) -> tuple[Config, MappingSpec]:
    """The config and its mapping as the files are now, read and validated, ``listen`` beating
    the file; raises ConfigError. Touches nothing of the running process, so it may run in a
    thread."""
    config = load_config(config_file, listen=listen)
    return config, load_mapping(config.upstream.mapping)


def warn_about_access(config: Config) -> None:
    """Say at start-up (and on reload) how Hybrid Chat's endpoints are reachable, when it is not
    by key (docs/behaviour.md §2.4)."""
    if config.expertflow.allow_anonymous:
        logs.get().warning(
            "expertflow_anonymous",
            detail="/customer and /label answer without a key (expertflow.allow_anonymous)",
        )
    elif not config.expertflow.api_keys:
        logs.get().warning(
            "expertflow_locked",
            detail="/customer and /label answer 401: set EXPERTFLOW_API_KEYS "
            "(or expertflow.allow_anonymous: true)",
        )


# What a restart is needed for: the routes and the listening socket are made once.
RESTART_ONLY = ("server.host", "server.port", "server.base_path", "server.watch_seconds",
                "server.drain_delay_seconds", "server.keepalive_timeout_seconds",
                "expertflow.path_prefix", "shared_state")  # fmt: skip


class Holder:
    """The live Runtime of an app, swapped atomically by `reload`."""

    def __init__(self, live: Runtime) -> None:
        self.current = live
        self._lock = asyncio.Lock()
        self._retired: set[asyncio.Task[None]] = set()

    async def reload(self, config_file: str | Path) -> bool:
        """Load, validate and swap in the files as they are now. An invalid file is refused
        with a log line, and the running config keeps serving."""
        log = logs.get()
        async with self._lock:
            old = self.current
            try:
                # In a thread: reading, parsing and validating a large file must not stall
                # the requests this process serves meanwhile.
                given = old.config.listen  # where the process was told to listen, kept
                config, mapping = await asyncio.to_thread(load_files, config_file, given)
                new = runtime.build(config, mapping, fleet=old.fleet, lifecycle=old.lifecycle)
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
            warn_about_access(config)
            # Requests in flight still use the old upstream client: close it after they can
            # have finished (their budget is the longest they run).
            task = asyncio.create_task(_retire(old, old.config.deadlines.budget("meta") + 1))
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)
            task.add_done_callback(lambda _: collector.refreeze())
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


async def _retire(retired: Runtime, after: float) -> None:
    try:
        await asyncio.sleep(after)
    finally:
        await retired.upstream.close()


HOLDER: web.AppKey[Holder] = web.AppKey("runtime", Holder)
_REQUEST_KEY = "crm_gateway_runtime"


def pin(request: web.Request) -> Runtime:
    """The Runtime this request uses from start to end."""
    live: Runtime = request.app[HOLDER].current
    request[_REQUEST_KEY] = live
    return live


def of(request: web.Request) -> Runtime:
    live: Runtime | None = request.get(_REQUEST_KEY)
    return live if live is not None else pin(request)
