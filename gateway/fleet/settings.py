"""The `shared_state` section of the config (README, configuration reference); its defaults are
in `schema/config.yaml` and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SharedStateSettings:
    redis_url: str | None = field(repr=False)  # may hold a password
    timeout_seconds: float  # the longest one Redis call may take
    retry_seconds: float  # after a failure, per-process state this long, then try again
    key_prefix: str
