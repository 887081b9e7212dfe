"""Serving on several processes: two workers share a port and their metrics, and SIGTERM lets
requests in flight finish before everything stops cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.request
from typing import Any

from conftest import free_port, gateway, gateway_env, wait_for


def get(url: str, key: str = "test-key-1") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": key})
    with urllib.request.urlopen(request, timeout=30) as r:
        return r.status, r.read()


def test_two_workers_serve_share_metrics_and_stop_cleanly(processes: Any) -> None:
    sandbox_port, port = free_port(), free_port()
    processes.append(gateway("sandbox", "--port", str(sandbox_port), "--delay", "0.05"))
    env = gateway_env(f"http://127.0.0.1:{sandbox_port}")
    supervisor = gateway(
        "serve", "--config", "config.example.yaml", "--port", str(port), "--workers", "2", env=env
    )
    processes.append(supervisor)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz")
    for _ in range(12):
        assert get(f"{base}/api/v1/customer/1001")[0] == 200
    text = wait_for(f"{base}/metrics").decode()
    served = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('crm_gateway_requests_total{operation="find_customer",status="200"}')
    ]
    assert served == [12.0]  # one sum over both workers

    # A request in flight when SIGTERM arrives still gets its answer.
    result: dict[str, Any] = {}
    slow = threading.Thread(
        target=lambda: result.update(r=get(f"{base}/api/v1/customer/1002/cases"))
    )
    slow.start()
    wait_for(f"{base}/healthz")
    supervisor.send_signal(signal.SIGTERM)
    slow.join(30)
    assert result["r"][0] == 200
    assert supervisor.wait(30) == 0
    processes.remove(supervisor)
    out = supervisor.stdout.read().decode() if supervisor.stdout else ""
    events = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    started = {e["pid"] for e in events if e["event"] == "started"}
    stopped = {e["pid"] for e in events if e["event"] == "stopped"}
    assert len(started) == 2 and stopped == started
    assert events[-1]["event"] == "supervisor_stopped" and events[-1]["code"] == 0
    assert all(e["loop"] == "uvloop" for e in events if e["event"] == "started")


def test_a_dead_worker_is_replaced(processes: Any) -> None:
    sandbox_port, port = free_port(), free_port()
    processes.append(gateway("sandbox", "--port", str(sandbox_port)))
    env = gateway_env(f"http://127.0.0.1:{sandbox_port}")
    supervisor = gateway(
        "serve", "--config", "config.example.yaml", "--port", str(port), "--workers", "2", env=env
    )
    processes.append(supervisor)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    workers = subprocess.run(
        ["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(workers) == 2
    subprocess.run(["kill", "-KILL", workers[0]], check=True)
    # Connections queued on the killed process are lost with it; new ones go to live workers.
    for _ in range(50):  # the supervisor looks every 0.2 s
        now = subprocess.run(
            ["pgrep", "-P", str(supervisor.pid)], capture_output=True, text=True
        ).stdout.split()
        if len(now) == 2 and workers[0] not in now:
            break
        time.sleep(0.1)
    assert len(now) == 2 and workers[0] not in now and workers[1] in now
    wait_for(f"http://127.0.0.1:{port}/healthz")
    time.sleep(0.5)  # the new worker's own start-up
    for _ in range(20):
        assert get(f"http://127.0.0.1:{port}/api/v1/customer/1001")[0] == 200
