"""Keeps an OAuth access token valid with the refresh_token grant (RFC 6749 §6): refreshed
before it expires and on demand (after a 401), one refresh at a time however many requests
wait. The tokens and the refresh lock live in a `TokenStore`, so replicas can share them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway import logs
from gateway.errors import BadGateway
from gateway.upstream.call import Call, Send
from gateway.upstream.clock import SYSTEM, Clock
from gateway.upstream.shared import Tokens, TokenStore


class Revealing(Protocol):
    """A secret held so that it shows only when asked (the config's Secret)."""

    def reveal(self) -> str: ...


@dataclass(frozen=True)
class OAuthClient:
    token_path: str  # relative to the upstream's base URL, e.g. /oauth/tokens
    client_id: Revealing
    client_secret: Revealing
    refresh_before_seconds: float = 300.0


class TokenKeeper:
    def __init__(
        self, client: OAuthClient, store: TokenStore, send: Send, clock: Clock = SYSTEM
    ) -> None:
        """``send``: one untraced attempt (the grant's body holds the client secret)."""
        self.client, self.store, self._send, self.clock = client, store, send, clock

    async def fresh(self) -> Tokens:
        """The current tokens, refreshed first if the access token is missing or expiring."""
        tokens = await self.store.get()
        ahead = self.client.refresh_before_seconds
        due = not tokens.access or (
            tokens.expires_at is not None and self.clock.time() >= tokens.expires_at - ahead
        )
        return await self.refresh(tokens) if due else tokens

    async def refresh(self, seen: Tokens) -> Tokens:
        """Refresh, unless someone else already replaced the access token ``seen``."""
        async with self.store.refreshing():
            current = await self.store.get()
            if current.access and current.access != seen.access:
                return current
            client = self.client
            body = {
                "grant_type": "refresh_token",
                "refresh_token": current.refresh,
                "client_id": client.client_id.reveal(),
                "client_secret": client.client_secret.reveal(),
            }
            call = Call("POST", client.token_path, client.token_path, body=body)
            resp = await self._send(call)
            data: Any = resp.data if resp.status == 200 else None
            if not isinstance(data, dict) or not data.get("access_token"):
                logs.get().error(
                    "oauth_refresh_failed",
                    status=resp.status,
                    action="check the OAuth client id, secret and refresh token",
                )
                raise BadGateway("The CRM refused the gateway's credentials.")
            expires_in = data.get("expires_in")
            tokens = Tokens(
                access=str(data["access_token"]),
                refresh=str(data.get("refresh_token") or current.refresh),  # may rotate
                expires_at=self.clock.time() + float(expires_in)
                if isinstance(expires_in, int | float)
                else None,
            )
            logs.redactor.add(tokens.access)
            logs.redactor.add(tokens.refresh)
            await self.store.put(tokens)
            logs.get().info("oauth_refreshed", expires_in=expires_in)
            return tokens
