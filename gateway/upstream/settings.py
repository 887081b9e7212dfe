"""The upstream client's settings, as the config file gives them (README, configuration
reference); their defaults are in `schema/config.yaml` and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetrySettings:
    attempts: int
    backoff_start_seconds: float
    backoff_max_seconds: float
    max_retry_after_seconds: float
    min_attempt_seconds: float

    def fits(self, left: float | None, wait: float) -> bool:
        """Can what the budget has left (None: no budget) hold a wait and one more attempt?"""
        return left is None or left - wait >= self.min_attempt_seconds


@dataclass(frozen=True)
class BreakerSettings:
    """Open when at least `failure_rate` of the requests in the last `window_seconds` failed,
    once there were `min_requests` of them; stay open `cooldown_seconds`, then probe."""

    failure_rate: float
    min_requests: int
    window_seconds: float
    cooldown_seconds: float
