"""The upstream CRM's client: one request through small layers, outermost first (docs/behaviour.md
§4): the breaker (fail fast while the CRM is failing; records every request's outcome), the
retry policy (attempts inside the budget), auth (headers, or an OAuth token and one re-send
after a 401), the rate gate and in-flight slot, and the transport (one attempt). It knows no
CRM and no mapping: what it needs from them comes in as plain data and functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import UpstreamError
from gateway.exchange import Response
from gateway.upstream.auth import Auth, StaticAuth
from gateway.upstream.breaker import Breaker
from gateway.upstream.call import Call, Transport
from gateway.upstream.clock import SYSTEM, Clock
from gateway.upstream.gate import RateGate
from gateway.upstream.limits import RateLimits
from gateway.upstream.policy import RetryPolicy, retrying
from gateway.upstream.settings import BreakerSettings, RetrySettings
from gateway.upstream.shared import Holds


class Upstream:
    def __init__(
        self,
        transport: Transport,
        *,
        name: str,
        headers: Mapping[str, str] | None = None,
        auth: Auth | None = None,
        retry: RetrySettings,
        breaker: BreakerSettings,
        max_in_flight: int = 20,
        limits: RateLimits | None = None,
        holds: Holds | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        """``headers`` go on every request, under auth's and the request's own."""
        self.transport = transport
        self.name = name
        self.headers = dict(headers or {})
        self.auth = auth or StaticAuth({})
        self.limits = limits or RateLimits()
        self.policy = RetryPolicy(retry, clock)
        self.gate = RateGate(
            max_in_flight, limits=self.limits, holds=holds, retry=retry, clock=clock
        )
        self.breaker = Breaker(name, breaker, clock)

    async def start(self) -> None:
        await self.transport.start()

    async def close(self) -> None:
        await self.transport.close()

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
        scope = self.limits.scope(method, path, route)
        call = Call(method, path, route, query or {}, headers or {}, body, retry_safe, scope)
        reached: list[Call] = []  # the attempts that got as far as the transport

        async def admitted(call: Call) -> Response:
            async with self.gate.admit(call):
                reached.append(call)
                sent = call.with_headers({**self.headers, **call.headers}) if self.headers else call
                answer = await self.transport.send(sent)
            await self.gate.observe(call, answer)
            return answer

        try:
            with self.breaker.guard() as guard:
                guard.answer = await retrying(
                    self.policy, call, lambda call: self.auth.send(call, admitted)
                )
        except UpstreamError as exc:
            if not reached:  # stopped before it went out: the circuit, a hold, a slot, a token
                exc.unapplied()
            raise
        return guard.answer
