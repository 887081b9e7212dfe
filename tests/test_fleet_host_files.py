"""The host's shared files: their subdirectories made private when missing; a failure said
once (an error line), and once more when they work again."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

from conftest import events

from gateway.fleet.host_files import HostFiles


def test_a_failure_is_said_once_and_its_end_once(tmp_path: Path, capsys: Any) -> None:
    files = HostFiles(tmp_path / "state")
    made = files.place("locks")
    assert made.is_dir() and stat.S_IMODE(made.stat().st_mode) == 0o700
    files.worked()  # nothing to say while all is well
    for _ in range(3):
        files.failed("lock", NotADirectoryError(20, "Not a directory"))
    assert not files.up
    files.worked()
    files.worked()
    assert files.up
    said = [e for e in events(capsys.readouterr().out) if e["event"].startswith("host_state")]
    assert [(e["event"], e["level"]) for e in said] == [
        ("host_state_unavailable", "error"),
        ("host_state_restored", "warning"),
    ]
    assert said[0]["operation"] == "lock" and said[0]["error"] == "NotADirectoryError"
