"""Structured logs: JSON lines on stdout (or a readable console format for development).

A serving process writes them through a background writer (`start_writer`, see logwriter.py):
a stdout nobody reads costs dropped, counted lines, never a stalled request. Elsewhere (the
integrator's commands, tests in one process) lines are written as they are made.

Every line passes through redaction last: configured secrets (API keys, upstream credentials,
tokens) and the credentials of any URL are replaced wherever they appear, and customer PII
(emails, phone numbers, and the values of keys such as `name` or `body`) is masked unless
`LOG_PII=true`.
"""

from __future__ import annotations

import atexit
import datetime
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from structlog.processors import format_exc_info

from gateway import jsonio
from gateway.logwriter import BackgroundWriter
from gateway.redaction import Redactor

redactor = Redactor()

# Extra receivers of every written line (the test suite scans them all for secrets).
SINKS: list[Callable[[str], None]] = []


class _Printer:
    """Hands the line to the background writer, or writes to the stdout of the moment (so a
    logger built once still follows a redirect)."""

    def __call__(self, message: str) -> None:
        writer = _writer
        if writer is not None:
            writer.put(message)
            return
        out = sys.stdout
        out.write(message + "\n")
        out.flush()
        for sink in SINKS:
            sink(message)


def _returned(line: str) -> str:
    return line


# What is bound to every line of the current request (its id, its trace): see `bind`.
_bound: ContextVar[dict[str, Any]] = ContextVar("log_context", default={})  # noqa: B039


def bind(**values: Any) -> None:
    """Add keys to every line written in the current context (the request's task)."""
    _bound.set({**_bound.get(), **values})


def unbind(*keys: str) -> None:
    bound = _bound.get()
    if any(k in bound for k in keys):
        _bound.set({k: v for k, v in bound.items() if k not in keys})


_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_NAMES = {n: name for name, n in _LEVELS.items()}
_UTC = datetime.UTC


_second: list[Any] = [None, ""]  # the last whole second stamped, and its text


def _timestamp() -> str:
    """Now, as `datetime.now(UTC).isoformat()` writes it (microseconds rounded half to even,
    left out when 0), with Z for +00:00; the date and time of a second are formatted once."""
    fraction, whole = math.modf(time.time())
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    if whole != _second[0]:
        when = datetime.datetime.fromtimestamp(whole, _UTC)
        _second[:] = [whole, when.strftime("%Y-%m-%dT%H:%M:%S")]
    return f"{_second[1]}.{micros:06d}Z" if micros else f"{_second[1]}Z"


class Logger:
    """What `get()` returns: ``log.info("event", key=value, ...)`` writes one line. The line is
    the fields, then ``event``, the bound context, ``level`` and ``timestamp`` (ISO, UTC), in
    that order (structlog's), an exception's traceback under ``exception``; redacted; rendered
    as JSON or for the console. One dict a line, no processor chain: a busy worker writes two
    lines a request."""

    __slots__ = ("_console", "_min", "_out")

    def __init__(self, min_level: int, console: Any, out: Callable[[str], Any]) -> None:
        self._min = min_level
        self._console = console  # structlog's ConsoleRenderer, or None for JSON
        self._out = out

    def _emit(self, level: str, event: str, args: tuple[Any, ...], fields: dict[str, Any]) -> Any:
        if args:  # printf-style arguments, as structlog reads them
            one = len(args) == 1 and isinstance(args[0], Mapping) and args[0]
            event = event % (args[0] if one else args)
        fields["event"] = event
        for key, value in _bound.get().items():
            fields.setdefault(key, value)
        fields["level"] = level
        fields["timestamp"] = _timestamp()
        if "exc_info" in fields:
            fields = dict(format_exc_info(None, level, fields))
        line = redactor.event(fields)
        if self._console is not None:
            return self._out(self._console(None, level, line))
        return self._out(jsonio.dumps(line))

    def log(self, level: int, event: str, *args: Any, **fields: Any) -> Any:
        if level < self._min:
            return None
        return self._emit(_NAMES[level], event, args, fields)

    def debug(self, event: str, *args: Any, **fields: Any) -> Any:
        return None if self._min > 10 else self._emit("debug", event, args, fields)

    def info(self, event: str, *args: Any, **fields: Any) -> Any:
        return None if self._min > 20 else self._emit("info", event, args, fields)

    def warning(self, event: str, *args: Any, **fields: Any) -> Any:
        return None if self._min > 30 else self._emit("warning", event, args, fields)

    warn = warning

    def error(self, event: str, *args: Any, **fields: Any) -> Any:
        return None if self._min > 40 else self._emit("error", event, args, fields)

    def exception(self, event: str, *args: Any, **fields: Any) -> Any:
        fields.setdefault("exc_info", True)
        return self.error(event, *args, **fields)

    def critical(self, event: str, *args: Any, **fields: Any) -> Any:
        return None if self._min > 50 else self._emit("critical", event, args, fields)

    fatal = critical


_logger: Logger | None = None
_reporter: Logger | None = None  # the same, returning the line: for the writer's own warnings
_writer: BackgroundWriter | None = None


def configure(
    level: str = "info", fmt: str = "json", *, secrets: Iterable[str] = (), pii: bool = False
) -> None:
    redactor.configure(secrets, pii=pii)
    # jsonio.dumps never fails: a line with broken text is written repaired.
    console = structlog.dev.ConsoleRenderer() if fmt == "console" else None
    min_level = logging.getLevelName(level.upper())
    global _logger, _reporter
    # Built once per configuration: a logger per call would cost more than the line it writes.
    _logger = Logger(min_level, console, _Printer())
    _reporter = Logger(min_level, console, _returned)


def get() -> Logger:
    if _logger is None:
        configure()
    assert _logger is not None
    return _logger


def _dropped_line(count: int) -> str | None:
    if _reporter is None:
        configure()
    assert _reporter is not None
    line: str | None = _reporter.warning("log_lines_dropped", dropped=count)
    return line


def start_writer(fd: int | None = None, **options: Any) -> BackgroundWriter:
    """From now on, lines go through a background writer to `fd` (stdout by default). Python's
    own logging (aiohttp's, asyncio's) is sent through the same pipeline, so it is redacted and
    cannot block either. Flushed at exit."""
    global _writer
    if _writer is not None:
        return _writer
    sys.stdout.flush()  # whatever was printed before comes first
    _writer = BackgroundWriter(
        sys.stdout.fileno() if fd is None else fd, report=_dropped_line, sinks=SINKS, **options
    )
    logging.getLogger().addHandler(_FORWARD)
    logging.captureWarnings(True)
    atexit.register(stop_writer)
    return _writer


def shutting_down() -> None:
    """The process is stopping and has no request left to stall: from now on every line is
    kept, however full the queue (the `stopped` line above all)."""
    if _writer is not None:
        _writer.keep_everything()


def stop_writer(timeout: float = 2.0) -> bool:
    """Write what is queued, waiting at most `timeout` (a stalled reader must not keep the
    process from exiting); then lines are written directly again. False when time ran out: the
    writer then stays, so that nothing blocks on the stalled output."""
    global _writer
    writer = _writer
    if writer is None:
        return True
    if not writer.close(timeout):
        return False
    _writer = None
    logging.getLogger().removeHandler(_FORWARD)
    logging.captureWarnings(False)
    return True


class _Forward(logging.Handler):
    """Python's logging records, as log lines of ours."""

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and record.name.startswith("aiohttp"):
            # Bytes that are not HTTP, answered 400 by aiohttp's parser: the caller's mistake,
            # not an error of ours; no traceback, nothing of what was sent (any client could
            # otherwise fill the log with error lines).
            get().warning("http_unreadable", problem=type(exc).__name__)
            return
        # structlog knows the standard levels only: a custom one counts as the one below it.
        level = min(max(record.levelno // 10 * 10, logging.DEBUG), logging.CRITICAL)
        get().log(
            level,
            "python_log",
            logger=record.name,
            message=record.getMessage(),
            exc_info=record.exc_info or False,
        )


@dataclass
class RequestStats:
    """What one request did, for its log line: upstream calls made, cache outcomes."""

    upstream_calls: int = 0
    cache: list[str] = field(default_factory=list)
    # Each upstream attempt, for `explain` and the admin's debug trace; never logged.
    calls: list[dict[str, Any]] = field(default_factory=list)
    keep_bodies: bool = False

    @property
    def cache_status(self) -> str | None:
        """One word for the request: hit, miss, stale, or mixed outcomes joined by '+'."""
        seen = list(dict.fromkeys(self.cache))
        return "+".join(seen) if seen else None


_stats: ContextVar[RequestStats | None] = ContextVar("request_stats", default=None)


def start_request() -> RequestStats:
    stats = RequestStats()
    _stats.set(stats)
    return stats


def stats() -> RequestStats | None:
    return _stats.get()


_FORWARD = _Forward(logging.WARNING)
