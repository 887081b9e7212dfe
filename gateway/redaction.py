"""Redaction, applied to every log line last: configured secrets (API keys, upstream
credentials, tokens) and the credentials of any URL are replaced wherever they appear, and
customer PII (emails, phone numbers, and the values of keys such as `name` or `body`) is masked
unless `LOG_PII=true`. `gateway.logs` holds the process's one `Redactor`; `explain` makes its
own, for secrets only."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# International numbers (+41 79..., 0041...) and long digit runs; not dates, not short ids.
_PHONE = re.compile(r"(?<![\w.:-])(?:\+|00)\d[\d ()-]{6,}\d|(?<![\w.:-])\d{9,}(?![\w.:-])")
_DIGIT = re.compile(r"\d")
# The credentials of a URL (`scheme://user:password@`): never a log line's, whatever the key.
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]*@")
PII_KEYS = frozenset({"email", "phone", "name", "body", "agent_email", "first_name", "last_name"})
# Keys whose values are ours (ids, times, templates): secrets are still removed, PII patterns
# are not applied.
STRUCTURAL = frozenset(
    {"timestamp", "request_id", "trace_id", "span_id", "level", "route", "path", "method",
     "operation", "config", "mapping", "upstream", "url", "collector"}
)  # fmt: skip


_PLAIN = frozenset({int, float, bool})  # values with nothing to redact
# Keys whose values come back line after line (a route, a method, an event's name): each
# value is redacted once, then looked up.
_REPEATED = frozenset(
    {"event", "level", "method", "route", "path", "operation", "cache", "upstream", "status",
     "retry_reason", "reason"}
)  # fmt: skip


class Redactor:
    """Applied to every line last: what it returns is what gets written."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.pii = False
        self._seen: dict[tuple[str, str], str] = {}  # (key, text) -> redacted, see `event`

    def configure(self, secrets: Iterable[str], *, pii: bool) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
        self.pii = pii
        self._seen = {}

    def add(self, secret: str) -> None:
        """A secret learned at run time (a refreshed token)."""
        if len(secret) >= 4 and secret not in self.secrets:
            self.secrets = sorted([*self.secrets, secret], key=len, reverse=True)
            self._seen = {}

    def text(self, value: str, *, structural: bool = False) -> str:
        if "@" in value and "://" in value:
            value = _USERINFO.sub(r"\1[secret]@", value)
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, "[secret]")
        if not self.pii and not structural:
            value = _masked(value)
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

    def event(self, event: dict[str, Any]) -> dict[str, Any]:
        """The line's fields, redacted, as `value` redacts each (a new dict). Inlined for the
        common values, plain text and numbers, and the text of keys whose values repeat
        (routes, methods, event names) redacted once: every line passes here."""
        secrets, mask, seen = self.secrets, not self.pii, self._seen
        out = {}
        for k, v in event.items():
            kind = type(v)
            if kind is str:
                if mask and v and k in PII_KEYS:
                    v = "***"
                elif k in _REPEATED and (done := seen.get((k, v))) is not None:
                    v = done
                else:
                    given = v
                    if "@" in v and "://" in v:
                        v = _USERINFO.sub(r"\1[secret]@", v)
                    for secret in secrets:
                        if secret in v:
                            v = v.replace(secret, "[secret]")
                    if mask and k not in STRUCTURAL:
                        v = _masked(v)
                    if k in _REPEATED:
                        if len(seen) >= 4096:  # a caller's text may land here: bounded
                            seen.clear()
                        seen[(k, given)] = v
            elif v is not None and kind not in _PLAIN:
                v = self.value(k, v)
            out[k] = v
        return out


def _masked(value: str) -> str:
    """Emails and phone numbers masked. Each pattern needs an @ or a digit: most values have
    neither, and skip the scans."""
    if "@" in value:
        value = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", value)
    if _DIGIT.search(value):
        value = _PHONE.sub(lambda m: "***" + re.sub(r"\D", "", m.group())[-2:], value)
    return value
