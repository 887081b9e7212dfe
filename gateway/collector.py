"""Python's cyclic garbage collector, set for a server. What a serving process holds for its
whole life (modules, the config, the mapping and its compiled expressions: ~80k objects) is
frozen out of the collector's sight once it serves, so that a full collection no longer walks
it; and the youngest generation is large enough that a request's short-lived objects, nearly
all freed by their reference counts as soon as the request ends, do not set off a collection
every few requests. Without this, find customer spent ~20 µs a request in the collector, and
each full collection paused the loop for tens of milliseconds."""

from __future__ import annotations

import gc

# Net new container objects before a young collection (Python's default: 700).
YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Once the app is built and before it serves: collect, then freeze what is left."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def refreeze() -> None:
    """After a reload has retired a config: let the collector see the frozen objects again, so
    that the retired config's reference cycles are freed, and freeze what is left. One full
    collection (a pause of tens of milliseconds) per reload; nothing when the process never
    settled (tests, `explain`)."""
    if gc.get_freeze_count() == 0:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
