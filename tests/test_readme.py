"""The README's curl examples work as printed against `make run` (here: `crm-gateway demo`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
from conftest import ROOT, start_demo


def examples() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Every endpoint, with curl", 1)[1].split("```sh", 1)[1].split("```")[0]
    commands, current = [], ""
    for line in block.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\") + " " if line.endswith("\\") else line + "\n"
        if not line.endswith("\\") and not line.rstrip().endswith(("{", "[", ",")):
            commands.append(current)
            current = ""
    return commands


def test_readme_has_an_example_for_every_route() -> None:
    from gateway.api import OPERATIONS

    text = " ".join(examples())
    served = {"khoros": "/api/v1", "hybrid_chat": "", "admin": ""}
    for op in (op for op in OPERATIONS if op.realm in served):
        path = served[op.realm] + op.path
        pattern = re.escape(path).replace(r"\{type\}", "[a-z]+").replace(r"\{id\}", r"\d+")
        verb = "" if op.method == "GET" else f"-X {op.method} "
        assert re.search(rf"{verb}'?http://127\.0\.0\.1:8080{pattern}( |\n|$|\?|')", text), path


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_examples_work_as_printed(processes: Any) -> None:
    _, port = start_demo(processes)
    for _ in range(2):  # twice: repeats must work too (no duplicate errors, same case back)
        for command in examples():
            command = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            done = subprocess.run(
                ["bash", "-c", command.replace("curl -s", "curl -s -w '\\n%{http_code}'", 1)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            *body, status = done.stdout.rstrip("\n").split("\n")
            assert status in ("200", "201"), (command, done.stdout)
            json.loads("\n".join(body))
