"""`crm-gateway register`: tell Khoros Marketing where the gateway is
(contracts/khoros-crm-registration.openapi.json). The Khoros access token and the value Khoros
will send as `Authorization` come from the environment, and are never printed."""

from __future__ import annotations

import json
import os
from typing import Any, TextIO
from urllib.parse import urlparse

import aiohttp

KHOROS_API = "https://api.spredfast.com/v2/crm"


class RegisterError(Exception):
    pass


def settings(env: dict[str, str] | None = None) -> tuple[str, str, str]:
    """(API base URL, access token, authHeaderValue) from the environment."""
    env = dict(os.environ if env is None else env)
    token = env.get("KHOROS_ACCESS_TOKEN", "").strip()
    if not token:
        raise RegisterError("KHOROS_ACCESS_TOKEN is not set (a Khoros Marketing access token)")
    value = env.get("KHOROS_AUTH_HEADER_VALUE", "").strip()
    if not value:
        keys = [k.strip() for k in env.get("GATEWAY_API_KEYS", "").split(",") if k.strip()]
        if not keys:
            raise RegisterError(
                "set KHOROS_AUTH_HEADER_VALUE, or GATEWAY_API_KEYS (its first key is used)"
            )
        value = keys[0]
    return env.get("KHOROS_API_URL", KHOROS_API).rstrip("/"), token, value


async def register(
    name: str,
    instance_url: str,
    *,
    update: str | None,
    out: TextIO,
    env: dict[str, str] | None = None,
) -> int:
    parsed = urlparse(instance_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise RegisterError(f"--instance-url must be an http(s) URL, not {instance_url!r}")
    if update is not None and not update.isdigit():
        raise RegisterError(f"--update takes the numeric CRM id, not {update!r}")
    if parsed.scheme != "https":
        print("warning: Khoros will call a plain http URL; use https in production", file=out)
    api, token, value = settings(env)
    body = {"name": name, "instanceUrl": instance_url.rstrip("/"), "authHeaderValue": value}
    method, url = (
        ("PATCH", f"{api}/admin/custom/{update}") if update else ("POST", f"{api}/admin/custom")
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, url, data=json.dumps(body), headers=headers, timeout=aiohttp.ClientTimeout(30)
        ) as resp,
    ):
        text = await resp.text()
        status = resp.status
    shown = text.replace(token, "[secret]").replace(value, "[secret]")
    print(f"{method} {url} -> {status}", file=out)
    print(_pretty(shown), file=out)
    return 0 if 200 <= status < 300 else 1


def _pretty(text: str) -> str:
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text
    return json.dumps(data, indent=2)
