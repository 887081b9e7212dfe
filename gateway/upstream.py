"""The HTTP client for the upstream CRM: auth from the mapping, timeouts from the request's
budget, transport failures turned into gateway errors. It knows no CRM."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy

from gateway import deadline, logs, metrics
from gateway.config import OAuthSettings, Secret
from gateway.errors import AttemptTimedOut, BadGateway, DeadlineExceeded, UpstreamUnavailable
from gateway.mapping.model import MappingSpec
from gateway.oauth import TokenKeeper
from gateway.retry import CircuitBreaker, RateGate, RetryPolicy, RetrySettings, parse_retry_after


@dataclass(frozen=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    data: Any  # parsed JSON, or None when the body is empty or not JSON
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def auth_headers(mapping: MappingSpec, credentials: Mapping[str, Secret]) -> dict[str, str]:
    """Headers of the first auth rule whose `when` holds for the configured credentials."""
    ctx = {"credentials": {k: v.reveal() for k, v in credentials.items()}}
    for rule in mapping.auth:
        if rule.when(ctx):
            headers = {k: str(v) for k, v in rule.headers(ctx).items()}
            if rule.basic:
                user, password = (str(t(ctx)) for t in rule.basic)
                token = base64.b64encode(f"{user}:{password}".encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            return headers
    return {}


class Upstream:
    def __init__(
        self,
        base_url: str,
        mapping: MappingSpec,
        credentials: Mapping[str, Secret],
        *,
        attempt_timeout: float,
        max_connections: int,
        retry: RetrySettings | None = None,
        oauth: OAuthSettings | None = None,
    ) -> None:
        self.base_url = base_url
        self.name = mapping.name
        self.attempt_timeout = attempt_timeout
        settings = retry or RetrySettings()
        self.policy = RetryPolicy(settings)
        self.gate = RateGate(settings.max_in_flight)
        self.breaker = CircuitBreaker(
            mapping.name, settings.breaker_failures, settings.breaker_cooldown_seconds
        )
        self._max_connections = max_connections
        self._headers = {
            **{k: str(v) for k, v in mapping.headers({}).items()},
            **auth_headers(mapping, credentials),
        }
        self._session: aiohttp.ClientSession | None = None
        self.tokens: TokenKeeper | None = None
        if oauth is not None:
            if not mapping.oauth_token_url:
                raise ValueError(f"the mapping {mapping.file} has no oauth.token_url")
            current = credentials.get("oauth_token")
            self.tokens = TokenKeeper(
                oauth, base_url + mapping.oauth_token_url, current.reveal() if current else ""
            )
        self._log = logs.get()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections)
        self._session = aiohttp.ClientSession(connector=connector)
        # aiohttp silently repeats GET/PUT/DELETE once when a reused connection drops; that
        # would hide attempts from the retry policy and the budget, and repeat PUTs unasked.
        # Its own test client switches it off the same way.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        route: str,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        retry_safe: bool = False,
    ) -> Response:
        """A call with retries inside the request's budget. ``route`` is the unrendered path
        template: it goes to the log, where ids and customer data must not. ``retry_safe``:
        repeating the call cannot apply it twice (a read, or a keyed or guarded write)."""
        budget = deadline.current()
        policy = self.policy
        attempt = 0
        refreshed = False
        reason: str | None = None  # why the current attempt is a retry
        while True:
            attempt += 1
            self.breaker.before()
            await self.gate.wait(budget, policy)
            last = attempt >= policy.attempts
            seen = self.tokens.generation if self.tokens else 0
            try:
                resp = await self._attempt(
                    method, path, route, query, headers, body, attempt, reason
                )
            except (BadGateway, AttemptTimedOut) as exc:
                self.breaker.failure()
                wait = policy.backoff(attempt)
                if not retry_safe or last or not policy.fits(budget, wait):
                    raise
                reason = "timeout" if isinstance(exc, AttemptTimedOut) else "transport"
                self._retrying(route, attempt, reason, wait)
                await asyncio.sleep(wait)
                continue
            self.gate.observe(resp.headers, policy.settings.max_retry_after_seconds)
            if resp.status == 401 and self.tokens is not None and not refreshed:
                # The access token was revoked or expired early: refresh once and repeat (a 401
                # was not applied, so this is safe for any method).
                assert self._session is not None
                await self.tokens.refresh(self._session, seen)
                refreshed = True
                attempt -= 1
                reason = "401"
                continue
            if resp.status == 429:
                # Not applied upstream, so safe to repeat for any method.
                retry_after = resp.headers.get("Retry-After")
                asked = parse_retry_after(
                    retry_after, ceiling=policy.settings.max_retry_after_seconds
                )
                wait = policy.backoff(attempt) if asked is None else asked
                self.gate.hold(wait)
                if last or not policy.fits(budget, wait):
                    raise UpstreamUnavailable(
                        "The CRM asked us to slow down. Please try again in a moment.",
                        headers={"Retry-After": str(max(1, round(wait + 0.49)))},
                        detail=f"{method} {route} -> 429, Retry-After {retry_after!r}",
                    )
                reason = "429"
                self._retrying(route, attempt, reason, wait)
                continue  # the gate waits
            if resp.status in policy.retry_statuses:
                self.breaker.failure()
                wait = policy.backoff(attempt)
                if retry_safe and not last and policy.fits(budget, wait):
                    reason = str(resp.status)
                    self._retrying(route, attempt, reason, wait)
                    await asyncio.sleep(wait)
                    continue
                return resp
            self.breaker.success()
            return resp

    def outgoing_headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        """The headers a request is sent with: the mapping's, the current token, its own."""
        auth = self.tokens.authorization() if self.tokens else None
        return {**self._headers, **({"Authorization": auth} if auth else {}), **(extra or {})}

    def record(
        self,
        method: str,
        path: str,
        route: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str],
        body: Any,
        attempt: int,
    ) -> dict[str, Any]:
        """The call in the request's stats (for `explain` and the debug trace); the dict is
        completed with the outcome once there is one."""
        call: dict[str, Any] = {"method": method, "path": route, "url": path, "attempt": attempt}
        request_stats = logs.stats()
        if request_stats is not None:
            request_stats.upstream_calls += 1
            request_stats.calls.append(call)
            if query:
                call["url"] += "?" + urlencode(query)
            if request_stats.keep_bodies:
                call.update(headers=dict(headers), body=body)
        return call

    def _retrying(self, route: str, attempt: int, reason: str, wait: float) -> None:
        self._log.info(
            "upstream_retry", path=route, attempt=attempt, reason=reason, wait_ms=round(wait * 1000)
        )

    async def _attempt(
        self,
        method: str,
        path: str,
        route: str,
        query: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        body: Any,
        attempt: int,
        reason: str | None,
    ) -> Response:
        assert self._session is not None, "Upstream.start() was not awaited"
        budget = deadline.current()
        timeout = budget.attempt_timeout(self.attempt_timeout) if budget else self.attempt_timeout
        started = time.perf_counter()
        status: int | str = "error"
        if self.tokens is not None:
            await self.tokens.fresh(self._session)
        sent = self.outgoing_headers(headers)
        await self.gate.slot(budget)
        call = self.record(method, path, route, query, sent, body, attempt)
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                params=query,
                headers=sent,
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                status = resp.status
                text = await resp.text(errors="replace")
                data = _json(text)
                if 200 <= resp.status < 300 and data is None and text.strip():
                    status = "garbage"
                    raise BadGateway(detail=f"{method} {route}: the body is not JSON")
                return Response(resp.status, resp.headers, data, text)
        except TimeoutError:
            status = "timeout"
            if budget and budget.remaining() <= budget.margin:
                raise DeadlineExceeded(detail=f"{method} {route} did not answer in time") from None
            raise AttemptTimedOut(
                detail=f"{method} {route} timed out after {timeout:.1f}s"
            ) from None
        except aiohttp.ClientError as exc:
            status = type(exc).__name__
            raise BadGateway(detail=f"{method} {route}: {type(exc).__name__}") from None
        finally:
            self.gate.release()
            took = time.perf_counter() - started
            call.update(status=status, retry_reason=reason, duration_ms=round(took * 1000, 1))
            metrics.UPSTREAM.labels(self.name, str(status), reason or "").inc()
            metrics.UPSTREAM_LATENCY.labels(self.name).observe(took)
            self._log.info(
                "upstream",
                method=method,
                path=route,
                status=status,
                attempt=attempt,
                retry_reason=reason,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


def _json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
