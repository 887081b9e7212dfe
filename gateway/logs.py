"""Structured logs: JSON lines on stdout (or a readable console format for development).

Every line passes through redaction last: configured secrets (API keys, upstream credentials,
tokens) are replaced wherever they appear, and customer PII (emails, phone numbers, and the
values of keys such as `name` or `body`) is masked unless `LOG_PII=true`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateway import jsonio

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# International numbers (+41 79..., 0041...) and long digit runs; not dates, not short ids.
_PHONE = re.compile(r"(?<![\w.:-])(?:\+|00)\d[\d ()-]{6,}\d|(?<![\w.:-])\d{9,}(?![\w.:-])")
PII_KEYS = frozenset({"email", "phone", "name", "body", "agent_email", "first_name", "last_name"})
# Keys whose values are ours (ids, times, templates): secrets are still removed, PII patterns
# are not applied.
STRUCTURAL = frozenset(
    {"timestamp", "request_id", "level", "route", "path", "method", "operation", "config",
     "mapping", "upstream", "url"}
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
    """Writes to the stdout of the moment (so a logger built once still follows a redirect)."""

    def msg(self, message: str) -> None:
        out = sys.stdout
        out.write(message + "\n")
        out.flush()
        for sink in SINKS:
            sink(message)

    log = debug = info = warn = warning = error = critical = exception = fatal = failure = msg


_logger: Any = None


def configure(
    level: str = "info", fmt: str = "json", *, secrets: Iterable[str] = (), pii: bool = False
) -> None:
    redactor.configure(secrets, pii=pii)
    renderer: Any = (
        structlog.dev.ConsoleRenderer()
        if fmt == "console"
        else structlog.processors.JSONRenderer(serializer=_dumps)
    )
    global _logger
    # Built once per configuration: a logger per call would cost more than the line it writes.
    _logger = structlog.wrap_logger(
        _Printer(),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
    ).bind()


def _dumps(value: Any, **_: Any) -> str:
    return jsonio.dumps(value)  # never fails: a line with broken text is written repaired


def get() -> Any:
    if _logger is None:
        configure()
    return _logger


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
