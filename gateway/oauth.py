"""Keeps an OAuth access token valid with the refresh_token grant (RFC 6749 §6): refreshed
before it expires and once on a 401, one refresh at a time however many requests wait, and the
new tokens kept in the file the operator chose, so a restart does not need the old ones."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway import deadline, logs
from gateway.config import OAuthSettings
from gateway.errors import BadGateway


class TokenKeeper:
    def __init__(self, settings: OAuthSettings, token_url: str, access_token: str = "") -> None:
        self.settings = settings
        self.token_url = token_url
        self._access = access_token
        self._refresh = settings.refresh_token.reveal()
        self._expires_at: float | None = None  # wall-clock seconds; None: unknown
        self.generation = 0  # counts refreshes: a waiter whose token is already replaced skips
        self._lock = asyncio.Lock()
        self._load()

    def authorization(self) -> str | None:
        return f"Bearer {self._access}" if self._access else None

    def _due(self) -> bool:
        if not self._access:
            return True
        ahead = self.settings.refresh_before_seconds
        return self._expires_at is not None and time.time() >= self._expires_at - ahead

    async def fresh(self, session: aiohttp.ClientSession) -> None:
        """Refresh now if the token is missing or about to expire."""
        if self._due():
            await self.refresh(session, self.generation)

    async def refresh(self, session: aiohttp.ClientSession, seen: int) -> None:
        """Refresh, unless another request already did since it saw generation ``seen``."""
        async with self._lock:
            if self.generation != seen:
                return
            budget = deadline.current()
            timeout = budget.attempt_timeout(10.0) if budget else 10.0
            body = {
                "grant_type": "refresh_token",
                "refresh_token": self._refresh,
                "client_id": self.settings.client_id.reveal(),
                "client_secret": self.settings.client_secret.reveal(),
            }
            try:
                async with session.post(
                    self.token_url, json=body, timeout=aiohttp.ClientTimeout(total=timeout)
                ) as resp:
                    status = resp.status
                    data: Any = await resp.json(content_type=None) if status == 200 else None
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise BadGateway(detail=f"OAuth refresh: {type(exc).__name__}") from None
            if not isinstance(data, dict) or not data.get("access_token"):
                logs.get().error(
                    "oauth_refresh_failed",
                    status=status,
                    action="check the OAuth client id, secret and refresh token",
                )
                raise BadGateway("The CRM refused the gateway's credentials.")
            self._access = str(data["access_token"])
            self._refresh = str(data.get("refresh_token") or self._refresh)  # may rotate
            logs.redactor.add(self._access)
            logs.redactor.add(self._refresh)
            expires_in = data.get("expires_in")
            self._expires_at = time.time() + float(expires_in) if expires_in else None
            self.generation += 1
            self._save()
            logs.get().info("oauth_refreshed", expires_in=expires_in)

    def _load(self) -> None:
        path = self.settings.token_file
        if path is None or not path.exists():
            return
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            logs.get().warning("oauth_token_file_unreadable", file=str(path))
            return
        self._access = saved.get("access_token") or self._access
        self._refresh = saved.get("refresh_token") or self._refresh
        self._expires_at = saved.get("expires_at")

    def _save(self) -> None:
        path = self.settings.token_file
        if path is None:
            return
        tokens = {
            "access_token": self._access,
            "refresh_token": self._refresh,
            "expires_at": self._expires_at,
        }
        _write_private(path, json.dumps(tokens))


def _write_private(path: Path, text: str) -> None:
    """Write so that only the owner can read, and readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
