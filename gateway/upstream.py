"""The HTTP client for the upstream CRM: auth from the mapping, timeouts from the request's
budget, transport failures turned into gateway errors. It knows no CRM."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from gateway import deadline, logs
from gateway.config import Secret
from gateway.errors import BadGateway, DeadlineExceeded
from gateway.mapping.spec import MappingSpec


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
    ) -> None:
        self.base_url = base_url
        self.attempt_timeout = attempt_timeout
        self._max_connections = max_connections
        self._headers = {
            **{k: str(v) for k, v in mapping.headers({}).items()},
            **auth_headers(mapping, credentials),
        }
        self._session: aiohttp.ClientSession | None = None
        self._log = logs.get()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._max_connections)
        self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)

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
    ) -> Response:
        """One attempt. ``route`` is the unrendered path template: it goes to the log, where
        ids and customer data must not."""
        assert self._session is not None, "Upstream.start() was not awaited"
        budget = deadline.current()
        timeout = budget.attempt_timeout(self.attempt_timeout) if budget else self.attempt_timeout
        started = time.perf_counter()
        status: int | str = "error"
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                params=query,
                headers=headers,
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                status = resp.status
                text = await resp.text()
                return Response(resp.status, resp.headers, _json(text), text)
        except TimeoutError:
            status = "timeout"
            if budget and budget.remaining() <= budget.margin:
                raise DeadlineExceeded(detail=f"{method} {route} did not answer in time") from None
            raise BadGateway(detail=f"{method} {route} timed out after {timeout:.1f}s") from None
        except aiohttp.ClientError as exc:
            status = type(exc).__name__
            raise BadGateway(detail=f"{method} {route}: {type(exc).__name__}") from None
        finally:
            self._log.info(
                "upstream",
                method=method,
                path=route,
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


def _json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
