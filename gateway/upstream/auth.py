"""Authentication as a layer around the attempt: static headers computed once from the
mapping and the credentials, or an OAuth flow that keeps the token fresh and re-sends once
after a 401 (a 401 was not applied, so that is safe for any method)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Protocol

from gateway.exchange import Response
from gateway.upstream.call import Call, Send
from gateway.upstream.tokens import TokenKeeper


class Auth(Protocol):
    async def send(self, call: Call, send: Send) -> Response: ...


def _with(call: Call, auth: Mapping[str, str]) -> Call:
    """The call with auth headers under its own (a request's own headers win)."""
    return call.with_headers({**auth, **call.headers})


class StaticAuth:
    def __init__(self, headers: Mapping[str, str]) -> None:
        self.headers = dict(headers)

    async def send(self, call: Call, send: Send) -> Response:
        return await send(_with(call, self.headers))


class OAuthFlow:
    def __init__(self, keeper: TokenKeeper, headers: Mapping[str, str] | None = None) -> None:
        self.keeper = keeper
        self.headers = dict(headers or {})  # the mapping's other auth headers, if any

    async def send(self, call: Call, send: Send) -> Response:
        tokens = await self.keeper.fresh()
        resp = await send(_with(call, {**self.headers, "Authorization": f"Bearer {tokens.access}"}))
        if resp.status != 401:
            return resp
        # Revoked or expired early: refresh (once for every request that saw this token).
        tokens = await self.keeper.refresh(tokens)
        again = replace(call, retry_reason="401")
        return await send(
            _with(again, {**self.headers, "Authorization": f"Bearer {tokens.access}"})
        )
