"""The in-process implementations of the state a fleet will share: rate-limit holds (bounded)
and OAuth tokens (kept in the operator's file, readable only by the owner)."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

from conftest import FakeClock, events

from gateway.upstream.shared import LocalHolds, LocalTokenStore, Tokens


async def test_holds_keep_the_longest_and_read_the_latest_of_several_keys() -> None:
    holds = LocalHolds(FakeClock())
    await holds.hold("a", 10)
    await holds.hold("a", 5)
    await holds.hold("b", 20)
    assert await holds.until(["a"]) == 10
    assert await holds.until(["a", "b", "c"]) == 20
    assert await holds.until(["c"]) == 0


async def test_holds_are_bounded() -> None:
    clock = FakeClock(start=100)
    holds = LocalHolds(clock, limit=10)
    for n in range(10):
        await holds.hold(f"old{n}", 101)
    clock.advance(5)  # those are over
    for n in range(10):
        await holds.hold(f"new{n}", 200 + n)
    await holds.hold(
        "newest", 300
    )  # past the limit with every hold still on: the first to end goes
    assert len(holds._until) == 10
    assert await holds.until(["new0"]) == 0 and await holds.until(["newest"]) == 300


async def test_tokens_are_kept_in_a_private_file_and_read_back(tmp_path: Path) -> None:
    file = tmp_path / "secrets" / "tokens.json"
    store = LocalTokenStore(Tokens("a1", "r1"), file)
    await store.put(Tokens("a2", "r2", expires_at=123.0))
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    again = LocalTokenStore(Tokens("a1", "r1"), file)  # a restart
    assert await again.get() == Tokens("a2", "r2", 123.0)
    assert "a2" not in repr(await again.get())  # tokens never show in a repr


async def test_an_unreadable_token_file_is_reported_and_the_configured_tokens_used(
    tmp_path: Path, capsys: Any
) -> None:
    file = tmp_path / "tokens.json"
    for text in ("{not json", json.dumps(["a list"])):
        file.write_text(text)
        store = LocalTokenStore(Tokens("a1", "r1"), file)
        assert await store.get() == Tokens("a1", "r1")
    lines = [
        e for e in events(capsys.readouterr().out) if e["event"] == "oauth_token_file_unreadable"
    ]
    assert len(lines) == 2


async def test_one_refresh_at_a_time() -> None:
    store = LocalTokenStore(Tokens("a", "r"))
    inside = peak = 0

    async def refresh() -> None:
        nonlocal inside, peak
        async with store.refreshing():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(refresh() for _ in range(5)))
    assert peak == 1


def test_processes_writing_the_token_file_at_once_never_break_it(tmp_path: Path) -> None:
    """Workers of one host write the same file; each write is whole, and none fails."""
    import threading

    file = tmp_path / "tokens.json"
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        store = LocalTokenStore(Tokens("a", "r"), file)
        for k in range(200):
            try:
                asyncio.run(store.put(Tokens(f"a{n}-{k}", f"r{n}-{k}")))
            except BaseException as exc:
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert json.loads(file.read_text())["access_token"].endswith("-199")
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.json"]


async def test_an_unwritable_token_file_is_loud_and_the_tokens_kept(
    tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "not-a-directory").write_text("")
    store = LocalTokenStore(Tokens("a1", "r1"), tmp_path / "not-a-directory" / "tokens.json")
    await store.put(Tokens("a2", "r2"))
    assert (await store.get()).access == "a2"
    lines = [e for e in events(capsys.readouterr().out) if e["level"] == "error"]
    assert [e["event"] for e in lines] == ["oauth_token_file_unwritable"]
