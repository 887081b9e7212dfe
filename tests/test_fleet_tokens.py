"""OAuth tokens shared by several processes (here: several stores, each with its own Redis
connections or its own open file, as separate processes have), against a token endpoint that
rotates as Zendesk's does: each refresh spends the refresh token it was given, so a second
refresh for the same expiry would fail. One refresh per expiry, however many ask at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import OAUTH_CLIENT, FakeClock, RedisServer, answer

from gateway.exchange import Response
from gateway.fleet.redis import SharedRedis, connect
from gateway.fleet.tokens import RedisTokenStore
from gateway.upstream.call import Call
from gateway.upstream.shared import LocalTokenStore, Tokens, TokenStore
from gateway.upstream.tokens import TokenKeeper

CONFIGURED = Tokens("", "refresh-0")


class RotatingEndpoint:
    """Accepts only the latest refresh token, and spends it (Zendesk deletes the previous
    access and refresh tokens on every refresh)."""

    def __init__(self) -> None:
        self.current = "refresh-0"
        self.grants = 0
        self.refused = 0

    async def __call__(self, call: Call) -> Response:
        await asyncio.sleep(0.01)  # others pile up meanwhile
        if call.body["refresh_token"] != self.current:
            self.refused += 1
            return answer(400, {"error": "invalid_grant"})
        self.grants += 1
        self.current = f"refresh-{self.grants}"
        return answer(
            200,
            {"access_token": f"access-{self.grants}", "refresh_token": self.current,
             "expires_in": 3600},
        )  # fmt: skip


@pytest.fixture
async def redises(redis_server: RedisServer) -> AsyncIterator[list[SharedRedis]]:
    made = [connect(redis_server.url, prefix="test", retry_seconds=0.1) for _ in range(3)]
    yield made
    for r in made:
        await r.close()


def keepers(
    stores: list[TokenStore], endpoint: RotatingEndpoint, clock: FakeClock
) -> list[TokenKeeper]:
    return [TokenKeeper(OAUTH_CLIENT, s, endpoint, clock) for s in stores]


async def test_replicas_make_one_refresh_per_expiry(redises: list[SharedRedis]) -> None:
    endpoint, clock = RotatingEndpoint(), FakeClock(start=0)
    stores: list[TokenStore] = [
        RedisTokenStore(r, "client", LocalTokenStore(CONFIGURED), lease_seconds=5) for r in redises
    ]
    fleet = keepers(stores, endpoint, clock)
    got = await asyncio.gather(*(fleet[n % 3].fresh() for n in range(30)))
    assert {t.access for t in got} == {"access-1"} and endpoint.grants == 1
    clock.advance(3600 - 299)  # inside the last 300 s: due everywhere
    got = await asyncio.gather(*(fleet[n % 3].fresh() for n in range(30)))
    assert {t.access for t in got} == {"access-2"} and endpoint.grants == 2
    assert endpoint.refused == 0


async def test_a_401_refreshes_once_across_replicas(redises: list[SharedRedis]) -> None:
    endpoint, clock = RotatingEndpoint(), FakeClock(start=0)
    stores: list[TokenStore] = [
        RedisTokenStore(r, "client", LocalTokenStore(CONFIGURED), lease_seconds=5) for r in redises
    ]
    fleet = keepers(stores, endpoint, clock)
    seen = await fleet[0].fresh()
    # Every replica saw this token refused (revoked early) and asks for a refresh.
    got = await asyncio.gather(*(fleet[n % 3].refresh(seen) for n in range(12)))
    assert {t.access for t in got} == {"access-2"} and endpoint.grants == 2


async def test_without_redis_a_replica_refreshes_on_its_own_and_shares_later(
    redises: list[SharedRedis], redis_server: RedisServer
) -> None:
    endpoint, clock = RotatingEndpoint(), FakeClock(start=0)
    a, b = (
        RedisTokenStore(r, "client", LocalTokenStore(CONFIGURED), lease_seconds=5)
        for r in redises[:2]
    )
    first, second = keepers([a, b], endpoint, clock)
    assert (await first.fresh()).access == "access-1"
    redis_server.stop()
    clock.advance(3600)
    assert (await first.fresh()).access == "access-2"  # no Redis: on its own, no failure
    redis_server.start()  # empty: what was shared is gone
    await asyncio.sleep(0.15)  # past retry_seconds
    # `a` writes what it refreshed meanwhile, `b` reads it: no refresh with a spent token.
    assert (await first.fresh()).access == "access-2"
    assert (await second.fresh()).access == "access-2"
    assert endpoint.grants == 2 and endpoint.refused == 0


async def test_older_tokens_never_replace_newer_ones(redises: list[SharedRedis]) -> None:
    a = RedisTokenStore(redises[0], "client", LocalTokenStore(CONFIGURED), lease_seconds=5)
    b = RedisTokenStore(redises[1], "client", LocalTokenStore(CONFIGURED), lease_seconds=5)
    await b.put(Tokens("new", "r-new"))
    await a._save(Tokens("old", "r-old"), saved_at=1.0)  # refreshed earlier, saved late
    assert (await a.get()).access == "new"


async def test_the_workers_of_one_host_share_the_token_file(tmp_path: Path) -> None:
    """Two stores on one file, as two workers: one refresh; the other reads the new tokens
    from the file without refreshing (the first refresh spent the refresh token)."""
    file = tmp_path / "tokens.json"
    endpoint, clock = RotatingEndpoint(), FakeClock(start=0)
    one, two = LocalTokenStore(CONFIGURED, file), LocalTokenStore(CONFIGURED, file)
    first, second = keepers([one, two], endpoint, clock)
    got = await asyncio.gather(*(k.fresh() for k in (first, second) * 10))
    assert {t.access for t in got} == {"access-1"} and endpoint.grants == 1
    clock.advance(3600)
    assert (await second.fresh()).access == "access-2"
    assert (await two.get()).refresh == (await one.get()).refresh == "refresh-2"
    assert endpoint.refused == 0


async def test_a_refresh_holds_the_file_lock_against_other_processes(tmp_path: Path) -> None:
    file = tmp_path / "tokens.json"
    one, two = LocalTokenStore(CONFIGURED, file), LocalTokenStore(CONFIGURED, file)
    order: list[str] = []

    async def hold(store: LocalTokenStore, name: str) -> None:
        async with store.refreshing():
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(hold(one, "one"), hold(two, "two"))
    assert order in (
        ["one in", "one out", "two in", "two out"],
        ["two in", "two out", "one in", "one out"],
    )
