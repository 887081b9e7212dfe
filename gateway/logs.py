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
import logging
import re
import sys
from collections.abc import Callable, Iterable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from gateway import jsonio
from gateway.logwriter import BackgroundWriter

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# International numbers (+41 79..., 0041...) and long digit runs; not dates, not short ids.
_PHONE = re.compile(r"(?<![\w.:-])(?:\+|00)\d[\d ()-]{6,}\d|(?<![\w.:-])\d{9,}(?![\w.:-])")
# The credentials of a URL (`scheme://user:password@`): never a log line's, whatever the key.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]*@")
PII_KEYS = frozenset({"email", "phone", "name", "body", "agent_email", "first_name", "last_name"})
# Keys whose values are ours (ids, times, templates): secrets are still removed, PII patterns
# are not applied.
STRUCTURAL = frozenset(
    {"timestamp", "request_id", "trace_id", "span_id", "level", "route", "path", "method",
     "operation", "config", "mapping", "upstream", "url", "collector"}
)  # fmt: skip


class Redactor:
    """The last processor: what it returns is what gets written."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.pii = False

    def configure(self, secrets: Iterable[str], *, pii: bool) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self.pii = pii

    def add(self, secret: str) -> None:
        """A secret learned at run time (a refreshed token)."""
        if len(secret) >= 4 and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)

    def text(self, value: str, *, structural: bool = False) -> str:
        if "@" in value and "://" in value:
            value = _USERINFO.sub(r"\1[secret]@", value)
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, "[secret]")
        if not self.pii and not structural:
            value = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", value)
            value = _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group())[-2:], value)
        return value

    def value(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            if not self.pii and key in PII_KEYS and value:
                return "***"
            return self.text(value, structural=key in STRUCTURAL)
        if isinstance(value, dict):
            return {k: self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(key, v) for v in value]
        return value

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        return {k: self.value(k, v) for k, v in event.items()}


redactor = Redactor()

# Extra receivers of every written line (the test suite scans them all for secrets).
SINKS: list[Callable[[str], None]] = []


class _Printer:
    """Hands the line to the background writer, or writes to the stdout of the moment (so a
    logger built once still follows a redirect)."""

    def msg(self, message: str) -> None:
        writer = _writer
        if writer is not None:
            writer.put(message)
            return
        out = sys.stdout
        out.write(message + "\n")
        out.flush()
        for sink in SINKS:
            sink(message)

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


_logger: Any = None
_reporter: Any = None  # the same pipeline, returning the line: for the writer's own warnings
_writer: BackgroundWriter | None = None


def configure(
    level: str = "info", fmt: str = "json", *, secrets: Iterable[str] = (), pii: bool = False
) -> None:
    redactor.configure(secrets, pii=pii)
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if fmt == "console"
        # jsonio.dumps never fails: a line with broken text is written repaired.
        else structlog.processors.JSONRenderer(serializer=jsonio.dumps)
    )
    processors = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
        renderer,
    ]
    wrapper = structlog.make_filtering_bound_logger(logging.getLevelName(level.upper()))
    global _logger, _reporter
    # Built once per configuration: a logger per call would cost more than the line it writes.
    _logger = structlog.wrap_logger(_Printer(), processors=processors, wrapper_class=wrapper).bind()
    _reporter = structlog.wrap_logger(
        structlog.ReturnLogger(), processors=processors, wrapper_class=wrapper
    ).bind()


def get() -> Any:
    if _logger is None:
        configure()
    return _logger


def _dropped_line(count: int) -> str | None:
    if _reporter is None:
        configure()
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
