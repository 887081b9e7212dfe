"""One attempt over HTTP (aiohttp): the call goes out with a timeout taken from the request's
budget, and the answer comes back as a `Response`, or the failure as a gateway error: a timeout
as AttemptTimedOut (DeadlineExceeded when the budget is spent), a reset, a refused connection,
a 2xx body that is not JSON, or an answer over the size cap as AttemptFailed. An answer is
read no further than its cap (`upstream.max_answer_bytes`), never held whole."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import aiohttp
import orjson

from gateway import deadline, logs
from gateway.errors import AttemptFailed, AttemptTimedOut, DeadlineExceeded
from gateway.exchange import Response
from gateway.upstream import trace
from gateway.upstream.call import Call


def client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """A total timeout of exactly ``seconds``: aiohttp rounds one over its `ceil_threshold`
    (5 s by default) up to a whole second of the loop's clock, which let a 5 s attempt run 6 s."""
    return aiohttp.ClientTimeout(total=seconds, ceil_threshold=math.inf)


class HttpTransport:
    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        attempt_timeout: float,
        max_connections: int,
        max_answer_bytes: int,
    ) -> None:
        self.base_url = base_url
        self.name = name
        self.attempt_timeout = attempt_timeout
        self.max_answer_bytes = max_answer_bytes
        self._max_connections = max_connections
        self._full_timeout = client_timeout(attempt_timeout)  # most attempts have the cap
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            timeout_ceil_threshold=math.inf,  # see client_timeout
        )
        self._session = aiohttp.ClientSession(connector=connector)
        # aiohttp silently repeats GET/PUT/DELETE once when a reused connection drops; that
        # would hide attempts from the retry policy and the budget, and repeat PUTs unasked.
        # Its own test client switches it off the same way.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, call: Call) -> Response:
        """One attempt, traced: a log line, metrics, the request's stats."""
        timeout = self._timeout(repeatable=call.retry_safe)
        with trace.attempt(self.name, call) as attempt:
            if attempt.headers:
                call = call.with_headers({**call.headers, **attempt.headers})
            try:
                answer = await self._exchange(call, timeout)
            except (AttemptFailed, DeadlineExceeded) as exc:
                attempt.status = exc.cause if isinstance(exc, AttemptFailed) else "timeout"
                raise
            except asyncio.CancelledError:
                attempt.status = "cancelled"
                raise
            attempt.status = answer.status
            return answer

    async def exchange(self, call: Call) -> Response:
        """One attempt, untraced: for calls that must leave no trace (the OAuth token grant,
        whose body holds the client secret)."""
        return await self._exchange(call, self._timeout())

    def _timeout(self, *, repeatable: bool = True) -> float:
        """The attempt's timeout: the cap, or less when the budget is short (DeadlineExceeded
        when it is spent); a call that cannot be repeated may have all of a budget seen
        through (`Deadline.attempt_timeout`)."""
        budget = deadline.current()
        if budget is None:
            return self.attempt_timeout
        return budget.attempt_timeout(self.attempt_timeout, repeatable=repeatable)

    async def _exchange(self, call: Call, timeout: float) -> Response:
        assert self._session is not None, "HttpTransport.start() was not awaited"
        budget = deadline.current()
        where = f"{call.method} {call.route}"
        try:
            async with self._session.request(
                call.method,
                self.base_url + call.path,
                params=call.query or None,
                headers=call.headers,
                json=call.body,
                timeout=(
                    self._full_timeout
                    if timeout == self.attempt_timeout
                    else client_timeout(timeout)
                ),
            ) as resp:
                text = await self._read(resp, call)
                data = _json(text)
                if 200 <= resp.status < 300 and data is None and text.strip():
                    raise AttemptFailed(detail=f"{where}: the body is not JSON", cause="garbage")
                return Response(resp.status, resp.headers, data, text)
        except TimeoutError:
            if budget and budget.remaining() <= budget.margin:
                raise DeadlineExceeded(detail=f"{where} did not answer in time") from None
            raise AttemptTimedOut(detail=f"{where} timed out after {timeout:.1f}s") from None
        except aiohttp.ClientError as exc:
            name = type(exc).__name__
            failed = AttemptFailed(detail=f"{where}: {name}", cause=name)
            if isinstance(exc, aiohttp.ClientConnectorError):  # no connection: nothing was sent
                failed.unapplied()
            raise failed from None

    async def _read(self, resp: aiohttp.ClientResponse, call: Call) -> str:
        """The answer's text, read no further than the cap: past it (by its Content-Length, or
        as it streams in) the connection is dropped and the attempt failed."""
        declared = resp.content_length
        if declared is not None and declared > self.max_answer_bytes:
            raise self._too_large(resp, call, declared)
        body: bytes | bytearray
        if declared is not None and not resp.headers.get("Content-Encoding"):
            # Its length is known and within the cap (the parser reads no further): whole.
            body = await resp.read()
        else:
            body = bytearray()
            async for chunk in resp.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > self.max_answer_bytes:
                    raise self._too_large(resp, call, declared)
        try:
            encoding = resp.get_encoding()
        except RuntimeError:  # no charset it knows: aiohttp's own fallback, had it read the body
            encoding = "utf-8"
        return body.decode(encoding, errors="replace")

    def _too_large(
        self, resp: aiohttp.ClientResponse, call: Call, declared: int | None
    ) -> AttemptFailed:
        resp.close()  # the rest is not read, so the connection cannot be used again
        logs.get().warning(
            "upstream_too_large",
            method=call.method,
            path=call.route,
            status=resp.status,
            content_length=declared,
            limit_bytes=self.max_answer_bytes,
            action="raise upstream.max_answer_bytes if the CRM's answers are this large",
        )
        return AttemptFailed(
            detail=f"{call.method} {call.route}: the answer is over {self.max_answer_bytes} bytes",
            cause="too_large",
            repeatable=False,  # it would be as large again
        )


def _json(text: str) -> Any:
    """The parsed answer, or None when it is not JSON. orjson first (fast, and nesting past its
    limit is an error, not a RecursionError); the standard parser for what orjson refuses but a
    CRM may still send: lone surrogate escapes and raw control characters in strings (the
    engine repairs such text)."""
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(text, strict=False)
    except (ValueError, RecursionError):
        return None
