"""Who may call an operation (docs/behaviour.md §1.2, §2.4): each realm's key, compared in
constant time, and the limit on failed authentications from one client address."""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Callable

from aiohttp import web

from gateway.cache import AsyncTTLCache, CacheSettings
from gateway.config import Config, Secret
from gateway.errors import NotFound, TooManyFailures, Unauthorized, retry_after
from gateway.operation import Realm
from gateway.text import is_text

WINDOW_SECONDS = 60.0  # failed authentications are counted over the last minute


def authorized(header: str | None, keys: tuple[Secret, ...]) -> bool:
    """The header is a configured key, or ``Bearer <key>``. Every key is compared, in
    constant time, so timing tells nothing about which part was wrong."""
    if not header or not is_text(header):
        return False
    given = header.encode()
    bearer = header[7:].strip().encode() if header[:7].lower() == "bearer " else b""
    ok = False
    for secret in _encoded(keys):
        ok |= hmac.compare_digest(given, secret) | hmac.compare_digest(bearer, secret)
    return ok


@functools.lru_cache(maxsize=64)
def _encoded(keys: tuple[Secret, ...]) -> tuple[bytes, ...]:
    """The keys as bytes, once per config (Secrets hash by identity) rather than a request."""
    return tuple(key.reveal().encode() for key in keys)


def header(request: web.Request, name: str) -> str | None:
    """A request header as text. aiohttp keeps bytes that are not UTF-8 as lone surrogates;
    such a value is treated as absent (so a key in it is missing: 401, never a 500)."""
    value = request.headers.get(name)
    return value if value is None or is_text(value) else None


class FailureLimit:
    """Failed authentications per client address in the last minute, in the one cache layer
    (bounded: the addresses least recently seen go first)."""

    def __init__(
        self, max_addresses: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        settings = CacheSettings(WINDOW_SECONDS, max_addresses, 0)
        self._seen: AsyncTTLCache[list[float]] = AsyncTTLCache("auth_failures", settings)
        self._clock = clock

    def _recent(self, address: str) -> list[float]:
        now = self._clock()
        return [t for t in self._seen.peek(address) or [] if now - t < WINDOW_SECONDS]

    def blocked(self, address: str, limit: int) -> bool:
        return limit > 0 and len(self._recent(address)) >= limit

    def failed(self, address: str) -> None:
        self._seen.put(address, [*self._recent(address), self._clock()])


FAILURES: web.AppKey[FailureLimit] = web.AppKey("auth_failures", FailureLimit)


def check(request: web.Request, config: Config, realm: Realm) -> None:
    """Raise unless the request may call an operation of ``realm``; a failure counts against
    its address."""
    if realm == "ops":
        return
    address = request.remote or "unknown"
    failures = request.app[FAILURES]
    if failures.blocked(address, config.auth.max_failures_per_minute):
        raise TooManyFailures(headers={"Retry-After": retry_after(WINDOW_SECONDS)})
    try:
        _check_key(request, config, realm)
    except Unauthorized:
        failures.failed(address)
        raise


def _check_key(request: web.Request, config: Config, realm: Realm) -> None:
    if realm == "khoros":
        ok = authorized(header(request, "Authorization"), config.auth.api_keys)
    elif realm == "hybrid_chat":
        # A phone number reveals a person: a key is needed unless the operator opened these
        # endpoints on purpose (docs/behaviour.md §2.4). No keys and not open: always 401.
        given = header(request, "X-API-Key") or request.query.get("api_key")
        ok = config.expertflow.allow_anonymous or authorized(given, config.expertflow.api_keys)
    else:
        if config.admin.api_key is None:
            raise NotFound("No such endpoint.")
        ok = authorized(header(request, "Authorization"), (config.admin.api_key,))
    if not ok:
        raise Unauthorized()
