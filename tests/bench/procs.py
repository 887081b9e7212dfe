"""The processes a bench run starts, each on 127.0.0.1, each stopped by its own process group:
the gateway, the sandbox, the aiohttp reference, nginx."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KEY = "bench-key"  # the API key the gateway and the reference accept
EMAIL, TOKEN = "demo@example.com", "sandbox-token"  # the sandbox's own credentials


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def fetch(
    url: str, headers: dict[str, str] | None = None, body: bytes | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    """Status and body of one request; an error status is an answer, not an exception."""
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_http(url: str, headers: dict[str, str] | None = None, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            if fetch(url, headers, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > end:
            raise TimeoutError(f"{url} did not answer 200 within {timeout} s")
        time.sleep(0.1)


@contextmanager
def started(*cmd: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `cmd` in a process group of its own; on leaving, stop that group (and only it)."""
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,  # the gateway still formats and writes every log line
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            proc.wait()


def _cli() -> str:
    return str(Path(sys.executable).with_name("crm-gateway"))


def sandbox_flags() -> list[str]:
    """Flags that switch the sandbox's own rate limits off, where this version has them: the
    sandbox as the upstream of a bench should answer as asked, not spend a Zendesk plan's quota
    (the hang and the 429 storm are made with --delay and --status)."""
    helptext = subprocess.run([_cli(), "sandbox", "--help"], capture_output=True, text=True).stdout
    limits = ("--account-limit", "--user-update-limit", "--ticket-update-limit")
    return [part for flag in limits if flag in helptext for part in (flag, "0")]


@contextmanager
def sandbox(*extra: str, port: int | None = None) -> Iterator[str]:
    port = port or free_port()
    with started(_cli(), "sandbox", "--port", str(port), *sandbox_flags(), *extra):
        wait_port(port)  # not an API call: this sandbox may be made to hang or refuse
        yield f"http://127.0.0.1:{port}"


@contextmanager
def gateway(upstream: str, workers: int = 1) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The gateway as shipped (config.example.yaml, logging at info) in front of `upstream`."""
    port = free_port()
    env = {
        "ZENDESK_URL": upstream,
        "ZENDESK_EMAIL": EMAIL,
        "ZENDESK_API_TOKEN": TOKEN,
        "GATEWAY_API_KEYS": KEY,
        "EXPERTFLOW_API_KEYS": KEY,  # /label is keyed, as shipped
    }
    cmd = [_cli(), "serve", "--config", "config.example.yaml", "--port", str(port)]
    with started(*cmd, "--workers", str(workers), env=env) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz")
        yield url, proc


@contextmanager
def reference(upstream: str, cached: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The aiohttp reference (reference.py) in front of `upstream`, answering the cached JSON
    in the directory `cached` for meta and /label."""
    port = free_port()
    cmd = [sys.executable, str(HERE / "reference.py"), "--port", str(port)]
    cmd += ["--upstream", upstream, "--key", KEY, "--email", EMAIL, "--token", TOKEN]
    with started(*cmd, "--cached", str(cached)) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/label", {"Authorization": KEY})
        yield url, proc


@contextmanager
def nginx(conf: Path, probe: str) -> Iterator[subprocess.Popen[bytes]]:
    """nginx in the foreground with `conf` (its prefix is conf's directory)."""
    errors = conf.with_name(f"{conf.stem}-error.log")
    with started("nginx", "-c", str(conf), "-p", str(conf.parent), "-e", str(errors)) as proc:
        try:
            wait_http(probe)
        except TimeoutError as exc:
            log = errors.read_text() if errors.exists() else ""
            raise RuntimeError(f"nginx ({conf.name}) did not start:\n{log}") from exc
        yield proc


def worker_pids(proc: subprocess.Popen[bytes]) -> list[int]:
    """The processes that serve: the children of a supervisor, else the process itself."""
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    return [int(p) for p in children] or [proc.pid]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
