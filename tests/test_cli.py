"""The command line, as a user runs it: real processes on local ports, stopped at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_version() -> None:
    from gateway import shipped

    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == f"crm-gateway {shipped.version()}\n"


def test_the_environment_reads_gateway_variables_and_refuses_bad_numbers() -> None:
    from gateway.cli import Environment, from_environment
    from gateway.errors import ConfigError

    assert from_environment({}) == Environment(None, None, None, None)
    assert from_environment(
        {"GATEWAY_HOST": "0.0.0.0", "GATEWAY_PORT": "8081", "GATEWAY_WORKERS": " 4 "}
    ) == Environment("0.0.0.0", 8081, 4, None)
    assert from_environment({"GATEWAY_PORT": "", "GATEWAY_HOST": " "}) == from_environment({})
    for name, value in [("GATEWAY_PORT", "80a"), ("GATEWAY_PORT", "70000"),
                        ("GATEWAY_WORKERS", "0"), ("GATEWAY_WORKERS", "-1")]:  # fmt: skip
        with pytest.raises(ConfigError) as err:
            from_environment({name: value})
        assert str(err.value).startswith(f"environment: {name}: '{value}' is not a whole number")


def test_environment_beats_the_config_and_flags_beat_the_environment(
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """No --config (GATEWAY_CONFIG), the host and port from the environment, 2 workers from
    GATEWAY_WORKERS: a supervisor and two workers, not a supervisor of supervisors."""
    port, ignored = free_port(), free_port()
    env = gateway_env(
        "http://127.0.0.1:9",
        GATEWAY_CONFIG="config.example.yaml",
        GATEWAY_HOST="127.0.0.2",
        GATEWAY_PORT=str(port),
        GATEWAY_WORKERS="2",
    )
    supervisor = gateway("serve", env=env)
    processes.append(supervisor)
    wait_for(f"http://127.0.0.2:{port}/healthz")
    workers = subprocess.run(
        ["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(workers) == 2
    for pid in workers:  # and no worker has workers of its own
        assert subprocess.run(["pgrep", "-P", pid], capture_output=True).stdout == b""
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(30) == 0
    processes.remove(supervisor)

    env.update(GATEWAY_CONFIG="missing.yaml", GATEWAY_PORT=str(ignored))
    flagged = gateway(
        "serve", "--config", "config.example.yaml", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", env=env,
    )  # fmt: skip
    processes.append(flagged)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    flagged.send_signal(signal.SIGTERM)
    assert flagged.wait(30) == 0
    processes.remove(flagged)
    out = flagged.stdout.read().decode() if flagged.stdout else ""
    started = [json.loads(x) for x in out.splitlines() if '"started"' in x]
    assert [s["url"] for s in started] == [f"http://127.0.0.1:{port}/api/v1"]  # one process


def test_serve_without_a_config_or_with_a_bad_port_says_so() -> None:
    def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        merged = {k: v for k, v in os.environ.items() if k != "GATEWAY_CONFIG"}
        return subprocess.run(
            [sys.executable, "-m", "gateway", "serve", *args],
            cwd=ROOT,
            env={**merged, **env},
            capture_output=True,
            text=True,
            timeout=30,
        )

    done = serve({})
    assert done.returncode == 2
    assert "serve needs --config FILE, or GATEWAY_CONFIG set to one" in done.stderr
    done = serve(gateway_env("http://x", GATEWAY_PORT="http"), "--config", "config.example.yaml")
    assert done.returncode == 1
    assert "environment: GATEWAY_PORT: 'http' is not a whole number from 1 to 65535" in done.stderr


def test_sandbox_limits_are_set_on_the_command_line(
    processes: list[subprocess.Popen[bytes]],
) -> None:
    import base64
    import urllib.error
    import urllib.request

    port = free_port()
    processes.append(gateway("sandbox", "--port", str(port), "--account-limit", "2", quiet=True))
    token = base64.b64encode(b"demo@example.com/token:sandbox-token").decode()
    url, auth = f"http://127.0.0.1:{port}/api/v2/users/1001", {"Authorization": f"Basic {token}"}
    wait_for(url, auth)  # the first of two a minute
    with urllib.request.urlopen(urllib.request.Request(url, headers=auth)) as r:
        assert r.headers["X-Rate-Limit"] == "2" and r.headers["X-Rate-Limit-Remaining"] == "0"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, headers=auth))
    assert refused.value.code == 429 and int(refused.value.headers["Retry-After"]) > 0
