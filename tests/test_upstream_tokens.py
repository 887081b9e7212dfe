"""The OAuth token keeper, with a fake token endpoint and an injected clock: refreshed when
missing or about to expire, once however many callers ask at once, rotated refresh tokens kept,
and a refused refresh loud and a 502."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import OAUTH_CLIENT, FakeClock, answer, events

from gateway import logs
from gateway.errors import BadGateway
from gateway.exchange import Response
from gateway.upstream.call import Call
from gateway.upstream.shared import LocalTokenStore, Tokens
from gateway.upstream.tokens import TokenKeeper


class TokenEndpoint:
    """Issues access-1, access-2, ... and rotates the refresh token each time."""

    def __init__(self) -> None:
        self.grants: list[dict[str, Any]] = []

    async def __call__(self, call: Call) -> Response:
        self.grants.append(dict(call.body))
        await asyncio.sleep(0)  # others may pile up behind the lock meanwhile
        n = len(self.grants)
        return answer(
            200,
            {"access_token": f"access-{n}", "refresh_token": f"refresh-{n}", "expires_in": 3600},
        )


NONE_YET = Tokens("", "refresh-0")  # only the configured refresh token


def keeper(clock: FakeClock, endpoint: Any, tokens: Tokens = NONE_YET) -> TokenKeeper:
    return TokenKeeper(OAUTH_CLIENT, LocalTokenStore(tokens), endpoint, clock)


async def test_a_missing_token_is_fetched_with_the_refresh_token_grant() -> None:
    endpoint = TokenEndpoint()
    k = keeper(FakeClock(), endpoint)
    tokens = await k.fresh()
    assert tokens.access == "access-1" and tokens.refresh == "refresh-1"
    assert endpoint.grants == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "refresh-0",
            "client_id": "id",
            "client_secret": "client-secret",
        }
    ]
    assert await k.fresh() == tokens and len(endpoint.grants) == 1
    assert "access-1" in logs.redactor.secrets and "refresh-1" in logs.redactor.secrets


async def test_refreshed_ahead_of_expiry_with_the_rotated_refresh_token() -> None:
    clock = FakeClock()
    endpoint = TokenEndpoint()
    k = keeper(clock, endpoint)
    await k.fresh()
    clock.advance(3600 - 301)
    assert (await k.fresh()).access == "access-1"
    clock.advance(2)  # inside the last 300 s
    assert (await k.fresh()).access == "access-2"
    assert endpoint.grants[1]["refresh_token"] == "refresh-1"


async def test_many_callers_that_saw_one_token_refresh_it_once() -> None:
    endpoint = TokenEndpoint()
    k = keeper(FakeClock(), endpoint, Tokens("revoked", "refresh-0"))
    seen = await k.fresh()
    results = await asyncio.gather(*(k.refresh(seen) for _ in range(20)))
    assert {t.access for t in results} == {"access-1"} and len(endpoint.grants) == 1


@pytest.mark.parametrize(
    "refusal",
    [
        answer(400, {"error": "invalid_grant"}),
        answer(200, {"token_type": "bearer"}),
        answer(500),
    ],
)
async def test_a_refused_refresh_is_a_502_and_an_error_line(refusal: Response, capsys: Any) -> None:
    async def endpoint(call: Call) -> Response:
        return refusal

    with pytest.raises(BadGateway) as raised:
        await keeper(FakeClock(), endpoint).fresh()
    assert "credentials" in raised.value.message
    [line] = [e for e in events(capsys.readouterr().out) if e["event"] == "oauth_refresh_failed"]
    assert line["level"] == "error" and line["status"] == refusal.status
