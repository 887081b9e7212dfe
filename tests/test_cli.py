"""The command line, as a user runs it: real processes on local ports, stopped at the end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, free_port, gateway, gateway_env, start_demo, wait_for


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


def test_demo_prints_urls_and_key(processes: list[subprocess.Popen[bytes]]) -> None:
    proc, port = start_demo(processes)
    assert wait_for(f"http://127.0.0.1:{port}/api/v1/case/5001", {"Authorization": "demo-key"})
    assert proc.stdout is not None
    head = b"".join(proc.stdout.readline() for _ in range(8))
    assert f"127.0.0.1:{port}/api/v1".encode() in head and b"127.0.0.1:" in head
    # The demo's Hybrid Chat endpoints are open, and it says so.
    assert f"127.0.0.1:{port}/customer?query=phone:{{refId}}".encode() in head
    assert b"anonymous access allowed: demo data only" in head
    assert wait_for(f"http://127.0.0.1:{port}/customer?query=phone:%2B41791234567")


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
