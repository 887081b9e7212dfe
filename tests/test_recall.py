"""What the gateway remembers of its writes: kept for its time to live, then gone."""

from __future__ import annotations

from gateway.recall import LocalRecall


async def test_values_are_kept_for_their_time_to_live() -> None:
    now = [1000.0]
    recall = LocalRecall(max_entries=2, clock=lambda: now[0])
    await recall.put("a", {"id": "1"}, 10)
    await recall.put("b", {"id": "2"}, 100)
    assert await recall.get("a") == {"id": "1"}
    now[0] += 11
    assert await recall.get("a") is None and await recall.get("b") == {"id": "2"}
    await recall.forget("b")
    assert await recall.get("b") is None


async def test_it_is_bounded() -> None:
    recall = LocalRecall(max_entries=2)
    for key in "abc":
        await recall.put(key, key, 60)
    assert [await recall.get(k) for k in "abc"].count(None) == 1
