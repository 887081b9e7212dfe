"""What a sandbox app holds beside its store: the test levers (faults), the credentials it
accepts, the calls it saw and its load."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.sandbox.rules import ZendeskError
from gateway.sandbox.store import Store


@dataclass
class Faults:
    """Test levers. A fault applies to the requests whose method and path match, the next
    `times` of them (None: every one until changed)."""

    delay: float = 0.0  # before handling: a slow or hanging upstream
    delay_after: float = 0.0  # after handling: the write is applied, the answer comes late
    # After handling (and `delay_after`): the write is applied, then its answer is lost to a
    # dropped connection (`reset_after`) or replaced by an error of this status
    # (`status_after`, with `body`), as a proxy in front of the CRM may do.
    reset_after: bool = False
    status_after: int | None = None
    status: int | None = None  # answer this status instead of handling
    body: str | None = None  # the body of that answer (default: a Zendesk JSON error)
    content_type: str = "application/json"
    retry_after: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # more headers of that answer
    reset: bool = False  # drop the connection without an answer
    garbage: bool = False  # answer 200 with a body that is not JSON
    method: str | None = None
    path_prefix: str = "/api/v2/"
    times: int | None = None

    def take(self, request: web.Request) -> bool:
        """Does a fault apply to this request? Counts it against `times`."""
        if self.method and request.method != self.method:
            return False
        if not request.path.startswith(self.path_prefix) or self.times == 0:
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass
class Credentials:
    """What the sandbox accepts: an API token, a fixed OAuth token, and OAuth tokens it issued
    through the refresh_token grant. They expire, and each refresh deletes the previous access
    and refresh tokens, as Zendesk's does ("A successful request will also return a refresh
    token and delete the previous access and refresh tokens"). Harsher where Zendesk is
    silent: the fixed token counts as the first access token, so the first refresh deletes it."""

    email: str = "demo@example.com"
    api_token: str = "sandbox-token"
    oauth_token: str = "sandbox-oauth-token"
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    refresh_token: str = "sandbox-refresh-token"
    token_ttl: float = 7200.0
    issued: dict[str, float] = field(default_factory=dict)  # access token -> expiry
    refreshes: int = 0
    deleted: set[str] = field(default_factory=set)  # tokens a refresh deleted (still secrets)

    def accepts(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            fixed = value == self.oauth_token and self.oauth_token not in self.deleted
            return fixed or self.issued.get(value, 0) > time.monotonic()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value).decode()
            except ValueError:
                return False
            return decoded == f"{self.email}/token:{self.api_token}"
        return False

    def grant(self, body: dict[str, Any]) -> dict[str, Any]:
        if (
            body.get("grant_type") != "refresh_token"
            or body.get("client_id") != self.client_id
            or body.get("client_secret") != self.client_secret
            or body.get("refresh_token") != self.refresh_token
        ):
            raise ZendeskError(
                400, {"error": "invalid_grant", "error_description": "The grant is not valid"}
            )
        self.refreshes += 1
        self.deleted.update(self.issued, {self.oauth_token, self.refresh_token})
        self.issued.clear()
        access = secrets.token_hex(16)
        self.refresh_token = secrets.token_hex(16)
        self.issued[access] = time.monotonic() + self.token_ttl
        return {
            "access_token": access,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.token_ttl,
        }


STORE: web.AppKey[Store] = web.AppKey("store", Store)
FAULTS: web.AppKey[Faults] = web.AppKey("faults", Faults)
CREDENTIALS: web.AppKey[Credentials] = web.AppKey("credentials", Credentials)
CALLS: web.AppKey[list[str]] = web.AppKey("calls", list)


@dataclass
class Load:
    """Requests being handled now, and the most at once: what a client's cap really allowed."""

    now: int = 0
    peak: int = 0


LOAD: web.AppKey[Load] = web.AppKey("load", Load)
# The W3C trace context each call came with: (call, traceparent, tracestate), None when absent.
TRACE_CONTEXT: web.AppKey[list[tuple[str, str | None, str | None]]] = web.AppKey("trace", list)
