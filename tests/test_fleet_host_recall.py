"""What creates made, remembered across the workers of one host without Redis: what one process
remembers every other process recalls, for the entry's time to live, then it is gone from the
database too; processes writing at once lose nothing, and one killed mid-write leaves the
database whole; a read held up past the budget is a timeout, not "never made"; while the
files fail, each process recalls what it made itself, said loudly."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, FakeClock, events

from gateway import deadline
from gateway.errors import DeadlineExceeded
from gateway.fleet.host_files import HostFiles
from gateway.fleet.host_recall import HostRecall

WORKER = """
import asyncio, json, sys
from pathlib import Path
from gateway.fleet.host_files import HostFiles
from gateway.fleet.host_recall import HostRecall

async def main() -> None:
    recall = HostRecall(HostFiles(Path(sys.argv[1])))
    action, key = sys.argv[2], sys.argv[3]
    if action == "put":
        await recall.put(key, json.loads(sys.argv[4]), float(sys.argv[5]))
    elif action == "get":
        print(json.dumps(await recall.get(key)), flush=True)
    else:  # "many": writes until killed, or n of them
        n = 0
        while n != int(sys.argv[4]):
            await recall.put(f"{key}:{n}", {"id": str(n)}, 60)
            n += 1
            if n == 5:
                print("writing", flush=True)
    await recall.close()

asyncio.run(main())
"""


def worker(state: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(state), *args], cwd=ROOT, stdout=subprocess.PIPE
    )


async def output(proc: subprocess.Popen[bytes]) -> str:
    out, _ = await asyncio.to_thread(proc.communicate, None, 60)
    assert proc.returncode == 0
    return out.decode().strip()


def rows(state: Path) -> list[str]:
    with sqlite3.connect(state / "recall" / "recall.sqlite3") as db:
        return sorted(str(k) for (k,) in db.execute("SELECT key FROM recall"))


async def test_what_one_process_remembers_every_process_recalls(
    tmp_path: Path, processes: list[Any]
) -> None:
    here = HostRecall(HostFiles(tmp_path))
    try:
        put = worker(tmp_path, "put", "case:k1", '{"id": "20001", "digest": "d"}', "7200")
        processes.append(put)
        await output(put)
        assert await here.get("case:k1") == {"id": "20001", "digest": "d"}
        assert await here.get("case:none") is None
        await here.put("customer:k2", {"id": "501"}, 900)
        got = [worker(tmp_path, "get", key) for key in ("customer:k2", "case:k1", "case:none")]
        processes.extend(got)
        assert [await output(p) for p in got] == [
            '{"id": "501"}',
            '{"id": "20001", "digest": "d"}',
            "null",
        ]
        await here.forget("case:k1")
        gone = worker(tmp_path, "get", "case:k1")
        processes.append(gone)
        assert await output(gone) == "null"
    finally:
        await here.close()


async def test_entries_expire_and_leave_the_database(tmp_path: Path) -> None:
    clock = FakeClock()
    a, b = (HostRecall(HostFiles(tmp_path), clock=clock) for _ in range(2))
    try:
        await a.put("case:short", {"id": "1"}, 10)
        await a.put("case:long", {"id": "2"}, 100)
        clock.advance(9)
        assert await b.get("case:short") == {"id": "1"}
        clock.advance(2)
        assert await b.get("case:short") is None  # its time is up, on every process
        assert await b.get("case:long") == {"id": "2"}
        assert rows(tmp_path) == ["case:long", "case:short"]
        await b.put("case:new", {"id": "3"}, 100)  # a write takes the expired ones away
        assert rows(tmp_path) == ["case:long", "case:new"]
        clock.advance(100)
        await a.put("case:last", {"id": "4"}, 100)
        assert rows(tmp_path) == ["case:last"]  # no more than the time to live keeps
    finally:
        await a.close()
        await b.close()


async def test_processes_writing_at_once_lose_nothing_and_a_killed_one_breaks_nothing(
    tmp_path: Path, processes: list[Any]
) -> None:
    writers = [worker(tmp_path, "many", f"w{n}", "40") for n in range(4)]
    killed = worker(tmp_path, "many", "killed", "-1")  # writes until it is killed
    processes.extend([*writers, killed])
    assert killed.stdout is not None
    assert await asyncio.to_thread(killed.stdout.readline) == b"writing\n"
    killed.kill()  # mid-write, most likely: it writes without a pause
    killed.wait()
    for w in writers:
        await output(w)
    here = HostRecall(HostFiles(tmp_path))
    try:
        for n in range(4):
            assert [await here.get(f"w{n}:{k}") for k in range(40)] == [
                {"id": str(k)} for k in range(40)
            ]
        await here.put("after", {"id": "x"}, 60)  # the killed writer left no lock behind
        assert await here.get("after") == {"id": "x"}
    finally:
        await here.close()


async def test_a_read_held_up_past_the_budget_is_a_timeout_and_the_write_still_lands(
    tmp_path: Path,
) -> None:
    recall = HostRecall(HostFiles(tmp_path))
    try:
        await recall.put("case:k", {"id": "1"}, 60)
        other = sqlite3.connect(recall.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another worker is writing (for a while)
        write = asyncio.create_task(recall.put("case:k", {"id": "2"}, 60))
        await asyncio.sleep(0.05)
        with deadline.budget(0.2, 0.0), pytest.raises(DeadlineExceeded):
            await recall.get("case:k")  # behind the write, which waits for the other
        other.execute("COMMIT")
        other.close()
        await write
        assert await recall.get("case:k") == {"id": "2"} and recall.files.up
    finally:
        await recall.close()


async def test_failing_files_are_this_processs_memory_said_once(
    tmp_path: Path, capsys: Any
) -> None:
    blocked = tmp_path / "state"
    blocked.write_text("a file where the directory should be")
    recall = HostRecall(HostFiles(blocked))
    try:
        await recall.put("case:k", {"id": "7"}, 60)
        assert await recall.get("case:k") == {"id": "7"}  # its own memory
        assert await recall.get("case:other") is None and not recall.files.up
        blocked.unlink()
        await recall.put("case:again", {"id": "8"}, 60)
        assert rows(blocked) == ["case:again"] and recall.files.up
        assert await recall.get("case:k") == {"id": "7"}  # made meanwhile: still found
    finally:
        await recall.close()
    said = [e for e in events(capsys.readouterr().out) if e["event"].startswith("host_state")]
    assert [(e["event"], e["level"]) for e in said] == [
        ("host_state_unavailable", "error"),
        ("host_state_restored", "warning"),
    ]


async def test_a_database_deleted_under_the_workers_is_followed_by_all(tmp_path: Path) -> None:
    """A cleaner of temporary files may delete an idle database: each process then uses the
    one at the path, never a deleted copy of its own."""
    a, b = HostRecall(HostFiles(tmp_path)), HostRecall(HostFiles(tmp_path))
    try:
        await a.put("case:old", {"id": "1"}, 60)
        assert await b.get("case:old") == {"id": "1"}
        a.path.unlink()
        await b.put("case:new", {"id": "2"}, 60)  # b makes the new database
        assert await a.get("case:new") == {"id": "2"}
        await a.put("case:newer", {"id": "3"}, 60)
        assert await b.get("case:newer") == {"id": "3"} and rows(tmp_path) == [
            "case:new",
            "case:newer",
        ]
    finally:
        await a.close()
        await b.close()


async def test_a_write_whose_caller_is_cancelled_is_finished_first(tmp_path: Path) -> None:
    """The caller holds the key's lock: it lets go only once what it wrote is there."""
    recall = HostRecall(HostFiles(tmp_path))
    try:
        await recall.put("case:a", {"id": "1"}, 60)
        other = sqlite3.connect(recall.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another worker is writing
        write = asyncio.create_task(recall.put("case:b", {"id": "2"}, 60))
        await asyncio.sleep(0.05)
        write.cancel()
        asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await write
        assert rows(tmp_path) == ["case:a", "case:b"]
        other.close()
    finally:
        await recall.close()
