"""The command line, as a user runs it: real processes on local ports, stopped at the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, gateway_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, headers: dict[str, str] | None = None, timeout: float = 15) -> bytes:
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {})) as r:
                return bytes(r.read())
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def gateway(
    *args: str, env: dict[str, str | None] | None = None, quiet: bool = False
) -> subprocess.Popen[bytes]:
    """`python -m gateway ARGS`; env values of None remove the variable. Its output is a pipe
    the test reads, or (quiet) discarded: a pipe nobody reads fills up and blocks the process."""
    merged = {**os.environ, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env={k: v for k, v in merged.items() if v is not None},
        stdout=subprocess.DEVNULL if quiet else subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else subprocess.STDOUT,
    )


def test_serve_in_front_of_the_sandbox(processes: list[subprocess.Popen[bytes]]) -> None:
    sandbox_port, port = free_port(), free_port()
    processes.append(gateway("sandbox", "--port", str(sandbox_port)))
    env = gateway_env(f"http://127.0.0.1:{sandbox_port}")
    processes.append(
        gateway("serve", "--config", "config.example.yaml", "--port", str(port), env=env)
    )
    wait_for(f"http://127.0.0.1:{port}/healthz")
    body = wait_for(
        f"http://127.0.0.1:{port}/api/v1/customer/1001", {"Authorization": "test-key-1"}
    )
    assert json.loads(body)["name"] == "Jane Doe"
    gw = processes.pop()
    gw.send_signal(signal.SIGTERM)
    assert gw.wait(10) == 0
    lines = [json.loads(line) for line in (gw.stdout.read() if gw.stdout else b"").splitlines()]
    assert lines[0]["event"] == "started" and lines[0]["mapping"].endswith("zendesk.yaml")
    assert any(line["event"] == "request" and line["status"] == 200 for line in lines)


def start_demo(processes: list[subprocess.Popen[bytes]]) -> tuple[subprocess.Popen[bytes], int]:
    """`crm-gateway demo` as `make run` starts it, with no upstream or keys in the environment."""
    sandbox_port, port = free_port(), free_port()
    proc = gateway(
        "demo",
        *("--config", "config.example.yaml", "--port", str(port)),
        *("--sandbox-port", str(sandbox_port)),
        env=dict.fromkeys(
            ("GATEWAY_API_KEYS", "GATEWAY_ADMIN_KEY", "ZENDESK_URL", "ZENDESK_OAUTH_TOKEN")
        ),
    )
    processes.append(proc)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    return proc, port


def test_demo_prints_urls_and_key(processes: list[subprocess.Popen[bytes]]) -> None:
    proc, port = start_demo(processes)
    assert wait_for(f"http://127.0.0.1:{port}/api/v1/case/5001", {"Authorization": "demo-key"})
    assert proc.stdout is not None
    head = proc.stdout.readline() + proc.stdout.readline() + proc.stdout.readline()
    assert f"127.0.0.1:{port}/api/v1".encode() in head and b"127.0.0.1:" in head


def test_invalid_config_stops_start_up_with_file_line_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "auth: {api_keys: k}\nupstream:\n  mapping: m.yaml\n  base_url: http://x\n"
        "  credentails: {}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--config", str(bad)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert f"{bad}:5: upstream.credentails: unknown key; did you mean 'credentials'?" in done.stderr
