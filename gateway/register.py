"""`crm-gateway register`: tell Khoros Marketing where the gateway is
(contracts/khoros-crm-registration.openapi.json). The Khoros access token comes from the
OAuth2 client-credentials grant (KHOROS_CLIENT_ID, KHOROS_CLIENT_SECRET, KHOROS_TOKEN_URL), or is
given ready (KHOROS_ACCESS_TOKEN); it, the secret and the value Khoros will send as
`Authorization` are never printed."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlparse

import aiohttp

from gateway import client_credentials
from gateway.upstream.transport import client_timeout

KHOROS_API = "https://api.spredfast.com/v2/crm"
TIMEOUT = 30.0  # seconds, for each of the token and the registration calls


class RegisterError(Exception):
    pass


@dataclass(frozen=True)
class Settings:
    api: str  # the registration API's base URL
    header_value: str  # what Khoros will send as Authorization
    token: str | None  # a pre-issued access token
    client: tuple[str, str] | None  # (client id, client secret) for the grant, which wins
    token_url: str | None

    @property
    def secrets(self) -> list[str]:
        secret = self.client[1] if self.client else None
        return [s for s in (self.token, self.header_value, secret) if s]


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """What `register` needs, from the environment."""
    env = dict(os.environ if env is None else env)
    client_id = env.get("KHOROS_CLIENT_ID", "").strip()
    client_secret = env.get("KHOROS_CLIENT_SECRET", "").strip()
    token = env.get("KHOROS_ACCESS_TOKEN", "").strip() or None
    if bool(client_id) != bool(client_secret):
        missing = "KHOROS_CLIENT_SECRET" if client_id else "KHOROS_CLIENT_ID"
        raise RegisterError(
            f"{missing} is not set: the client-credentials grant needs KHOROS_CLIENT_ID and "
            "KHOROS_CLIENT_SECRET (or give a ready token in KHOROS_ACCESS_TOKEN instead)"
        )
    client, url = None, None
    if client_id:
        client = (client_id, client_secret)
        try:
            url = client_credentials.token_url(env.get("KHOROS_TOKEN_URL", ""))
        except client_credentials.GrantError as exc:
            raise RegisterError(str(exc)) from None
    elif token is None:
        raise RegisterError(
            "no Khoros credentials: KHOROS_ACCESS_TOKEN is not set (a Khoros Marketing access "
            "token), nor KHOROS_CLIENT_ID and KHOROS_CLIENT_SECRET (for the client-credentials "
            "grant, with KHOROS_TOKEN_URL)"
        )
    value = env.get("KHOROS_AUTH_HEADER_VALUE", "").strip()
    if not value:
        keys = [k.strip() for k in env.get("GATEWAY_API_KEYS", "").split(",") if k.strip()]
        if not keys:
            raise RegisterError(
                "set KHOROS_AUTH_HEADER_VALUE, or GATEWAY_API_KEYS (its first key is used)"
            )
        value = keys[0]
    api = env.get("KHOROS_API_URL", KHOROS_API).rstrip("/")
    return Settings(api, value, token, client, url)


async def _token(session: aiohttp.ClientSession, s: Settings, out: TextIO) -> str:
    if s.client is None or s.token_url is None:
        assert s.token is not None
        return s.token
    if s.token:
        print(
            "note: KHOROS_ACCESS_TOKEN is ignored: the client-credentials grant is used", file=out
        )
    try:
        token = await client_credentials.fetch_token(
            session, s.token_url, s.client[0], s.client[1], TIMEOUT
        )
    except client_credentials.GrantError as exc:
        raise RegisterError(str(exc)) from None
    print(f"POST {s.token_url} (client-credentials grant) -> access token obtained", file=out)
    return token


async def register(
    name: str,
    instance_url: str,
    *,
    update: str | None,
    out: TextIO,
    env: Mapping[str, str] | None = None,
) -> int:
    parsed = urlparse(instance_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise RegisterError(f"--instance-url must be an http(s) URL, not {instance_url!r}")
    if update is not None and not update.isdigit():
        raise RegisterError(f"--update takes the numeric CRM id, not {update!r}")
    s = settings(env)
    if parsed.scheme != "https":
        print("warning: Khoros will call a plain http URL; use https in production", file=out)
    body = {
        "name": name,
        "instanceUrl": instance_url.rstrip("/"),
        "authHeaderValue": s.header_value,
    }
    method, url = (
        ("PATCH", f"{s.api}/admin/custom/{update}") if update else ("POST", f"{s.api}/admin/custom")
    )
    async with aiohttp.ClientSession() as session:
        token = await _token(session, s, out)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            async with session.request(
                method,
                url,
                data=json.dumps(body),
                headers=headers,
                timeout=client_timeout(TIMEOUT),
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RegisterError(f"cannot reach {url}: {type(exc).__name__}") from None
    shown = text
    for secret in [token, *s.secrets]:
        shown = shown.replace(secret, "[secret]")
    print(f"{method} {url} -> {status}", file=out)
    print(_pretty(shown), file=out)
    return 0 if 200 <= status < 300 else 1


def _pretty(text: str) -> str:
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text
    return json.dumps(data, indent=2)
