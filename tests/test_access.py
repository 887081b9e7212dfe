"""Who may call what: keys compared whole, bare or as Bearer; each realm its own keys; failed
authentications counted per address over a minute (through HTTP in test_app.py)."""

from __future__ import annotations

from conftest import FakeClock

from gateway.access import WINDOW_SECONDS, FailureLimit, authorized
from gateway.config import Secret

KEYS = (Secret("first-key"), Secret("second-key"))


def test_a_key_bare_or_as_bearer_and_nothing_else() -> None:
    for given in ("first-key", "second-key", "Bearer first-key", "bearer  second-key"):
        assert authorized(given, KEYS), given
    for given in (None, "", "first", "first-key ", "Bearer", "Basic first-key", "x\udcff"):
        assert not authorized(given, KEYS), given
    assert not authorized("first-key", ())


def test_failures_count_per_address_over_the_window() -> None:
    clock = FakeClock()
    limit = FailureLimit(clock=clock.monotonic)
    for _ in range(3):
        assert not limit.blocked("10.0.0.1", 3)
        limit.failed("10.0.0.1")
    assert limit.blocked("10.0.0.1", 3) and not limit.blocked("10.0.0.2", 3)
    assert not limit.blocked("10.0.0.1", 0)  # 0: no limit
    clock.advance(WINDOW_SECONDS - 1)
    assert limit.blocked("10.0.0.1", 3)
    clock.advance(1)  # the first failures are a minute old: they no longer count
    assert not limit.blocked("10.0.0.1", 3)


def test_the_addresses_held_are_bounded() -> None:
    limit = FailureLimit(max_addresses=2, clock=FakeClock().monotonic)
    for address in ("a", "b", "c"):
        limit.failed(address)
    assert [limit.blocked(a, 1) for a in ("a", "b", "c")] == [False, True, True]
