"""The `shared_state` section of the config (README, configuration reference); defaults are in
`gateway.config` and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SharedStateSettings:
    redis_url: str | None = field(default=None, repr=False)  # may hold a password
    timeout_seconds: float = 0.25  # the longest one Redis call may take
    retry_seconds: float = 1.0  # after a failure, per-process state this long, then try again
    key_prefix: str = "crm-gateway"
