"""The upstream client a config and its mapping describe. What the client needs from the mapping
(its headers, the auth headers for the configured credentials, the rate-limit rule) is turned
here into plain data and functions, so that `gateway.upstream` and `gateway.mapping` never
import each other."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from gateway.config import Config, Secret
from gateway.errors import ConfigError
from gateway.exchange import Response
from gateway.fleet.state import Fleet
from gateway.mapping.model import MappingSpec, RateLimitSpec
from gateway.upstream import Upstream
from gateway.upstream.auth import Auth, OAuthFlow, StaticAuth
from gateway.upstream.call import Send, Transport
from gateway.upstream.limits import RateLimits
from gateway.upstream.shared import LocalTokenStore, Tokens
from gateway.upstream.tokens import OAuthClient, TokenKeeper
from gateway.upstream.transport import HttpTransport


def upstream(
    config: Config,
    mapping: MappingSpec,
    transport: Transport | None = None,
    *,
    fleet: Fleet | None = None,
) -> Upstream:
    """The client; ``transport`` replaces HTTP (`explain`'s dry run, tests' fakes); ``fleet``:
    the holds and tokens this process shares with others (none: its own)."""
    send: Send
    if transport is None:
        http = HttpTransport(
            config.upstream.base_url,
            name=mapping.name,
            attempt_timeout=config.upstream.attempt_timeout_seconds,
            max_connections=config.upstream.max_connections,
            max_answer_bytes=config.upstream.max_answer_bytes,
        )
        transport, send = http, http.exchange  # token grants leave no trace: secrets in body
    else:
        send = transport.send
    return Upstream(
        transport,
        name=mapping.name,
        headers={k: str(v) for k, v in mapping.headers({}).items()},
        auth=_auth(config, mapping, send, fleet),
        retry=config.upstream.retry,
        breaker=config.upstream.circuit_breaker,
        max_in_flight=config.upstream.max_in_flight,
        limits=rate_limits(mapping.rate_limits),
        holds=fleet.holds if fleet is not None else None,
    )


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


def _auth(config: Config, mapping: MappingSpec, send: Send, fleet: Fleet | None) -> Auth:
    static = auth_headers(mapping, config.upstream.credentials)
    oauth = config.upstream.oauth
    if oauth is None:
        return StaticAuth(static)
    if not mapping.oauth_token_url:
        raise ConfigError(mapping.file, None, "oauth.token_url", "OAuth refresh needs it")
    current = config.upstream.credentials.get("oauth_token")
    initial = Tokens(
        access=current.reveal() if current else "", refresh=oauth.refresh_token.reveal()
    )
    store = (
        fleet.tokens(initial, oauth.token_file, oauth.client_id.reveal())
        if fleet is not None
        else LocalTokenStore(initial, oauth.token_file)
    )
    client = OAuthClient(
        mapping.oauth_token_url, oauth.client_id, oauth.client_secret, oauth.refresh_before_seconds
    )
    others = {k: v for k, v in static.items() if k.lower() != "authorization"}
    return OAuthFlow(TokenKeeper(client, store, send), others)


def rate_limits(spec: RateLimitSpec | None) -> RateLimits:
    """The mapping's rule as the functions the rate gate asks."""
    if spec is None:
        return RateLimits()  # every limit holds the whole account

    def narrow(resp: Response) -> bool:
        headers = {k.lower(): v for k, v in resp.headers.items()}
        body = resp.data if resp.data is not None else resp.text
        return bool(spec.narrow({"status": resp.status, "headers": headers, "body": body}))

    def scope(method: str, path: str, route: str) -> str:
        return str(spec.scope({"method": method, "path": path, "route": route}))

    return RateLimits(narrow=narrow, scope=scope)
