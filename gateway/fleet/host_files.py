"""The files the workers of one supervisor share without Redis (docs/behaviour.md §5): the
per-key write locks (`host_locks`) and what creates made (`host_recall`), in the supervisor's
private state directory (0700, removed when it stops).

When those files fail (the directory gone and not creatable, a full disk, no file descriptors
left), a request is not failed for it: the process goes on with its own state, as a worker
without a supervisor would, says so once with an error line, and says so again when the files
work again."""

from __future__ import annotations

import os
from pathlib import Path

from gateway import logs


class HostFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._failing = False

    def place(self, name: str) -> Path:
        """A subdirectory of the state directory (made 0700 if missing: it may have been
        cleaned away under a long-running supervisor)."""
        path = self.directory / name
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    @property
    def up(self) -> bool:
        return not self._failing

    def failed(self, operation: str, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            logs.get().error(
                "host_state_unavailable",
                operation=operation,
                error=type(exc).__name__,
                detail=str(exc)[:200],
                directory=str(self.directory),
                action="serving with per-process locks and memory until the files work again",
            )

    def worked(self) -> None:
        if self._failing:
            self._failing = False
            logs.get().warning("host_state_restored", pid=os.getpid())
