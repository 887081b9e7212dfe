"""The signals that stop or reload a serving process, from its first moment.

A serving process takes its time before it can handle a signal (imports, the config and the
mapping, set-up), and a SIGTERM meanwhile ended it with 143, or silently for a worker its
supervisor was stopping. `catch`, the first thing `python -m gateway` and `crm-gateway` do, makes
SIGTERM, SIGINT and SIGHUP remembered instead; the serving code acts on what was `caught` once
its own handlers are in place (`serving.serve`, `serving.supervise`): an early stop is a clean
exit 0. A command that does not serve gives them back their default (`release`). A supervisor
starts each worker with them `blocked`: the worker inherits the mask and receives them only
once it has caught them, so not even its interpreter's start is a window.

Only the standard library here: this module is imported before anything slow."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_caught: list[signal.Signals] = []


def catch() -> None:
    """From now on, until the process installs its own handlers, remember these signals."""
    for sig in HANDLED:
        signal.signal(sig, _remember)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)  # held back by a supervisor: now


def _remember(signum: int, frame: FrameType | None) -> None:
    _caught.append(signal.Signals(signum))


def caught() -> list[signal.Signals]:
    """The signals that came before the process handled them itself, in order."""
    return list(_caught)


def release() -> None:
    """Back to the default handling (a command that does not serve); a signal that came
    meanwhile is delivered again, and so acted on as it would have been."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    pending, _caught[:] = list(_caught), []
    for sig in pending:
        os.kill(os.getpid(), sig)


@contextmanager
def blocked() -> Iterator[None]:
    """These signals held back in this thread, and in the processes started meanwhile (they
    inherit the mask, and `catch` lets them through)."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
