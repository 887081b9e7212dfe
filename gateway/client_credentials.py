"""The OAuth2 client-credentials grant (RFC 6749 §4.4), with which `crm-gateway register` obtains
a Khoros Marketing access token. The client secret goes only to the token endpoint (https, or a
loopback address), in HTTP Basic as RFC 6749 §2.3.1 says every server must accept, and appears
in no output: messages carry the endpoint's error code, never what was sent."""

from __future__ import annotations

import ipaddress
import json
from typing import Any
from urllib.parse import quote_plus, urlparse

import aiohttp

from gateway.upstream.transport import client_timeout

# The registration API's security scheme `sec0` (contracts/khoros-crm-registration.openapi.json)
# is clientCredentials with this token URL: a placeholder, so a real one must be configured.
SCHEME_TOKEN_URL = "https://example.com/oauth2/token"
PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net")  # RFC 2606


class GrantError(Exception):
    pass


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_url(configured: str) -> str:
    """The token endpoint: the configured one, else the security scheme's, which is only a
    placeholder today."""
    url = configured.strip() or SCHEME_TOKEN_URL
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    if any(host == d or host.endswith("." + d) for d in PLACEHOLDER_DOMAINS):
        said = (
            f"KHOROS_TOKEN_URL is a placeholder ({url})"
            if configured.strip()
            else "KHOROS_TOKEN_URL is not set, and the registration API's security scheme names "
            f"only a placeholder token URL ({url})"
        )
        raise GrantError(
            f"{said}: set KHOROS_TOKEN_URL to your Khoros Marketing OAuth2 token endpoint"
        )
    if parsed.scheme not in ("http", "https") or not host:
        raise GrantError(f"KHOROS_TOKEN_URL must be an https URL, not {url!r}")
    if parsed.scheme != "https" and not _loopback(host):
        raise GrantError("KHOROS_TOKEN_URL must be https: the client secret is sent to it")
    return url


async def fetch_token(
    session: aiohttp.ClientSession, url: str, client_id: str, client_secret: str, timeout: float
) -> str:
    """An access token for the client, or GrantError saying why there is none."""
    # RFC 6749 §2.3.1: id and secret are form-encoded, then sent as HTTP Basic credentials.
    auth = aiohttp.BasicAuth(quote_plus(client_id), quote_plus(client_secret))
    try:
        async with session.post(
            url,
            data={"grant_type": "client_credentials"},
            auth=auth,
            headers={"Accept": "application/json"},
            timeout=client_timeout(timeout),
        ) as resp:
            status, text = resp.status, await resp.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise GrantError(f"cannot reach the token endpoint {url}: {type(exc).__name__}") from None
    data = _json(text)
    token = data.get("access_token")
    if status != 200 or not isinstance(token, str) or not token:
        raise GrantError(_refusal(url, status, data).replace(client_secret, "[secret]"))
    kind = data.get("token_type")
    if isinstance(kind, str) and kind.lower() != "bearer":
        raise GrantError(f"the token endpoint {url} issued a {kind!r} token, not a Bearer token")
    return token


def _refusal(url: str, status: int, data: dict[str, Any]) -> str:
    """RFC 6749 §5.2: `error` (invalid_client, unauthorized_client, ...) and its description."""
    code, description = data.get("error"), data.get("error_description")
    said = ": ".join(str(x) for x in (code, description) if isinstance(x, str) and x)
    if status == 200:
        said = "an answer without an access_token"
    hint = (
        " (check KHOROS_CLIENT_ID and KHOROS_CLIENT_SECRET)"
        if status in (400, 401) or code in ("invalid_client", "unauthorized_client")
        else ""
    )
    return f"the token endpoint {url} refused the grant: {status} {said}".rstrip() + hint


def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
