"""Where a serving process is in its life, as `/readyz` tells it (docs/behaviour.md §6.1):
started once its app is set up, ready once it has also reached its Redis (when it has one),
draining from SIGTERM on. One per app: it outlives reloads."""

from __future__ import annotations


class Lifecycle:
    def __init__(self) -> None:
        self.started = False  # the app's start-up ran: upstream client and fleet started
        self.draining = False  # SIGTERM came: /readyz answers 503 while requests finish
        # Redis answered once since start-up. Until then a replica that cannot reach it is not
        # ready (a wrong URL, a network policy); after, Redis trouble is the whole fleet's, and
        # each process rides it out with its own state rather than leaving nobody ready.
        self.shared_state_reached = False

    @property
    def state(self) -> str:
        if self.draining:
            return "draining"
        return "serving" if self.started else "starting"
