"""Signals from a process's first moment (gateway/signals.py): caught and remembered until the
process acts on them, given back to a command that does not serve, held back for a child until
it catches them. Each in a process of its own: the test runner's handlers stay as they are.
What a serving process then does with them: test_serving.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import Any

from conftest import ROOT, free_port, gateway, wait_for

CAUGHT = """
import os, signal
from gateway import signals
signals.catch()
for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
    os.kill(os.getpid(), sig)
print(" ".join(s.name for s in signals.caught()), flush=True)
signals.release()  # delivered again, SIGHUP first: its default ends the process
print("not reached", flush=True)
"""

CHILD = """
import signal, subprocess, sys
from gateway import signals
with signals.blocked():
    p = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE, text=True)
p.send_signal(signal.SIGTERM)  # held back in the child, until it catches it
p.communicate("go\\n")
print("parent", sorted(s.name for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])), p.returncode)
"""

GRANDCHILD = """
import signal, sys
from gateway import signals
print("child", sorted(s.name for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])), flush=True)
sys.stdin.readline()  # the parent has sent its SIGTERM
signals.catch()
print("caught", [s.name for s in signals.caught()], flush=True)
"""


def run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=30
    )


def test_signals_are_remembered_until_released_then_act_as_by_default() -> None:
    done = run(CAUGHT)
    assert done.stdout == "SIGHUP SIGTERM SIGINT\n"
    assert done.returncode == -signal.SIGHUP  # the first given back, SIGHUP, ends it


def test_a_child_started_with_them_blocked_gets_them_only_once_it_catches_them() -> None:
    done = run(CHILD, GRANDCHILD)
    assert done.stdout.splitlines() == [
        "child ['SIGHUP', 'SIGINT', 'SIGTERM']",
        "caught ['SIGTERM']",
        "parent [] 0",  # the parent's mask as it was
    ]


def test_a_command_that_does_not_serve_still_ends_on_sigterm(processes: Any) -> None:
    port = free_port()
    sandbox = gateway("sandbox", "--port", str(port))
    processes.append(sandbox)
    auth = {"Authorization": "Bearer sandbox-oauth-token"}
    wait_for(f"http://127.0.0.1:{port}/api/v2/users/1001", auth)
    sandbox.send_signal(signal.SIGTERM)
    assert sandbox.wait(10) == -signal.SIGTERM
