"""The upstream client's settings, as the config file gives them (README, configuration
reference); defaults are in `gateway.config` and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetrySettings:
    attempts: int = 3
    backoff_start_seconds: float = 0.1
    backoff_max_seconds: float = 1.0
    max_retry_after_seconds: float = 60.0
    min_attempt_seconds: float = 0.25

    def fits(self, left: float | None, wait: float) -> bool:
        """Can what the budget has left (None: no budget) hold a wait and one more attempt?"""
        return left is None or left - wait >= self.min_attempt_seconds


@dataclass(frozen=True)
class BreakerSettings:
    """Open when at least `failure_rate` of the requests in the last `window_seconds` failed,
    once there were `min_requests` of them; stay open `cooldown_seconds`, then probe."""

    failure_rate: float = 0.5
    min_requests: int = 20
    window_seconds: float = 30.0
    cooldown_seconds: float = 30.0
