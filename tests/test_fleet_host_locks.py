"""Write locks across the workers of one host, without Redis: holders of one key in several OS
processes (three tasks each) run one at a time, and no update is lost; a holder killed with
SIGKILL frees the key at once; a wait that runs out is a timeout, never a write without the
lock; lock files do not pile up (a holder deletes its own, a worker's sweep what dead ones
left); when the files fail, this process's lock alone, said loudly."""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, events, host_lock_holder

from gateway import deadline
from gateway.errors import DeadlineExceeded
from gateway.fleet import host_locks
from gateway.fleet.host_files import HostFiles
from gateway.fleet.host_locks import HostLocks

RACER = """
import asyncio, os, sys
from pathlib import Path
from gateway.fleet.host_files import HostFiles
from gateway.fleet.host_locks import HostLocks

async def main() -> None:
    state, rounds, go = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    locks = HostLocks(HostFiles(state))
    counter, journal = state / "counter", state / "journal"
    print("ready", flush=True)
    while not go.exists():  # all start at once
        await asyncio.sleep(0.001)

    async def writer() -> None:
        for _ in range(rounds):
            async with locks.hold("case:1", 30):
                with journal.open("a") as j:
                    j.write(f"in {os.getpid()}\\n")
                count = int(counter.read_text())
                await asyncio.sleep(0.001)  # a read-modify-write the others would break
                counter.write_text(str(count + 1))
                with journal.open("a") as j:
                    j.write(f"out {os.getpid()}\\n")

    await asyncio.gather(*(writer() for _ in range(3)))

asyncio.run(main())
"""


def lock_files(state: Path) -> list[Path]:
    return list((state / "locks").glob("*.lock")) if (state / "locks").exists() else []


async def test_holders_in_several_processes_hold_one_at_a_time(
    tmp_path: Path, processes: list[Any]
) -> None:
    state, go, rounds = tmp_path / "state", tmp_path / "go", 12
    state.mkdir()
    (state / "counter").write_text("0")
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(state), str(rounds), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    processes.extend(racers)
    for racer in racers:
        assert racer.stdout is not None
        assert await asyncio.to_thread(racer.stdout.readline) == b"ready\n"
    go.touch()
    assert [await asyncio.to_thread(r.wait, 120) for r in racers] == [0] * 4
    total = 4 * 3 * rounds
    assert (state / "counter").read_text() == str(total)  # no update lost
    journal = (state / "journal").read_text().split("\n")[:-1]
    assert len(journal) == 2 * total
    for entered, left in zip(journal[::2], journal[1::2], strict=True):
        assert entered.startswith("in ") and left == "out " + entered[3:]  # never two inside
    assert len({line.split()[1] for line in journal}) == 4  # every process had its turns
    assert lock_files(state) == []  # each holder deleted its file


async def test_a_holder_killed_with_sigkill_frees_the_key(
    tmp_path: Path, processes: list[Any]
) -> None:
    locks, entered = HostLocks(HostFiles(tmp_path)), []
    holder = await host_lock_holder(tmp_path, "case:5")
    processes.append(holder)
    with deadline.budget(0.3, 0.1), pytest.raises(DeadlineExceeded):
        async with locks.hold("case:5", 30):
            entered.append("while held")
    async with locks.hold("case:6", 30):  # other keys are not held up
        entered.append("other key")
    holder.kill()  # no chance to let go, nor to delete its file
    holder.wait()
    assert lock_files(tmp_path) == [locks.path("case:5")]
    with deadline.budget(5, 0.1):
        async with locks.hold("case:5", 30):
            entered.append("after")
    assert entered == ["other key", "after"]
    assert lock_files(tmp_path) == []  # the next holder deleted what the dead one left
    assert len(locks.local) == 0


async def test_a_sweep_deletes_what_dead_holders_left_and_only_that(
    tmp_path: Path, processes: list[Any]
) -> None:
    locks = HostLocks(HostFiles(tmp_path))
    dead = [await host_lock_holder(tmp_path, f"case:{n}") for n in range(3)]
    alive = await host_lock_holder(tmp_path, "case:alive")
    processes.extend([*dead, alive])
    for holder in dead:
        holder.kill()
        holder.wait()
    assert len(lock_files(tmp_path)) == 4
    assert locks.sweep() == 3
    assert lock_files(tmp_path) == [locks.path("case:alive")]
    with deadline.budget(0.2, 0.1), pytest.raises(DeadlineExceeded):
        async with locks.hold("case:alive", 30):
            pass  # still held: the sweep took nothing from a live holder


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_a_waiter_that_gives_up_or_is_cancelled_leaves_nothing_behind(
    tmp_path: Path, processes: list[Any]
) -> None:
    locks = HostLocks(HostFiles(tmp_path))
    processes.append(await host_lock_holder(tmp_path, "case:7"))
    before = open_fds()
    for budget in (0.0, 0.15):
        with deadline.budget(budget, 0.0), pytest.raises(DeadlineExceeded):
            async with locks.hold("case:7", 30):
                pass
    waiter = asyncio.create_task(locks.hold("case:7", 30).__aenter__())
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert open_fds() == before and len(locks.local) == 0


async def test_failing_files_are_this_processs_lock_alone_said_once(
    tmp_path: Path, capsys: Any
) -> None:
    blocked = tmp_path / "state"
    blocked.write_text("a file where the directory should be")
    locks, inside, peak = HostLocks(HostFiles(blocked)), [0], [0]

    async def writer() -> None:
        async with locks.hold("case:8", 5):
            inside[0] += 1
            peak[0] = max(peak[0], inside[0])
            await asyncio.sleep(0.002)
            inside[0] -= 1

    await asyncio.gather(*(writer() for _ in range(5)))
    assert peak[0] == 1 and not locks.files.up
    blocked.unlink()
    async with locks.hold("case:8", 5):
        assert lock_files(blocked) == [locks.path("case:8")]  # the host's lock again
    said = [e for e in events(capsys.readouterr().out) if e["event"].startswith("host_state")]
    assert [(e["event"], e["level"]) for e in said] == [
        ("host_state_unavailable", "error"),
        ("host_state_restored", "warning"),
    ]
    assert said[0]["operation"] == "lock" and said[0]["error"] == "NotADirectoryError"


async def test_a_file_deleted_between_opening_and_locking_it_is_not_a_lock(
    tmp_path: Path, processes: list[Any], monkeypatch: Any
) -> None:
    """A waiter opens the file, its holder deletes it and lets go, the waiter's flock then
    succeeds on a file no longer at the path: it must try again on the path's new file, or a
    third process making that file would hold the key at the same time."""
    locks = HostLocks(HostFiles(tmp_path))
    path = locks.path("case:9")
    holder = await host_lock_holder(tmp_path, "case:9")
    processes.append(holder)
    real, let_go = fcntl.flock, []

    def flock(fd: int, operation: int) -> None:
        if not let_go:  # just after the waiter opened the file, its holder lets go
            let_go.append(fd)
            os.unlink(path)
            holder.kill()
            holder.wait()
        real(fd, operation)

    monkeypatch.setattr(host_locks.fcntl, "flock", flock)
    async with locks.hold("case:9", 30):
        assert let_go and path.exists()  # locked: the file now at the path
        with deadline.budget(0.2, 0.0), pytest.raises(DeadlineExceeded):
            async with HostLocks(HostFiles(tmp_path)).hold("case:9", 30):
                pass  # a third holder waits for it
    assert lock_files(tmp_path) == []
