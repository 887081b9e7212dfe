"""Fixtures: a real sandbox CRM on a local port, and the gateway in front of it, configured the
way users configure it (config.example.yaml plus environment variables)."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import logs
from gateway.app import create_app
from gateway.config import Config, load_config
from gateway.sandbox.demo import seed
from gateway.sandbox.server import CREDENTIALS, FAULTS, Faults, create_sandbox
from gateway.sandbox.store import Store

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "tests" / "contracts"  # third-party specifications, copied in (see its README)
API_KEY = "test-key-1"
SECOND_KEY = "test-key-2"
API = "/api/v1"
AUTH = {"Authorization": API_KEY}
EXPERTFLOW_KEY = "ef-key"
EF_AUTH = {"X-API-Key": EXPERTFLOW_KEY}  # Hybrid Chat's key (/customer, /label)


def gateway_env(upstream_url: str, **more: str) -> dict[str, str]:
    return {
        "ZENDESK_URL": upstream_url,
        "ZENDESK_EMAIL": "demo@example.com",
        "ZENDESK_API_TOKEN": "sandbox-token",
        "GATEWAY_API_KEYS": f"{API_KEY},{SECOND_KEY}",
        "EXPERTFLOW_API_KEYS": EXPERTFLOW_KEY,
        **more,
    }


# Everything the suite's gateways wrote: log lines and response bodies. At the end of the run
# none of the configured secrets may appear in it (see pytest_sessionfinish).
OUTPUT: list[str] = []
SECRETS = {
    API_KEY,
    SECOND_KEY,
    "sandbox-token",
    "sandbox-oauth-token",
    "sandbox-secret",
    "sandbox-refresh-token",
    "admin-secret",
    "ef-key",
    base64.b64encode(b"demo@example.com/token:sandbox-token").decode(),
}
logs.SINKS.append(OUTPUT.append)


def events(output: str) -> list[dict[str, Any]]:
    """The JSON log lines in captured output."""
    import json

    return [json.loads(x) for x in output.splitlines() if x.startswith("{")]


def leaked(output: list[str], secrets: set[str]) -> list[tuple[str, str]]:
    return [(s, line[:200]) for line in output for s in secrets if s and s in line]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    found = leaked(OUTPUT, SECRETS)
    if found:
        print(f"\nSECRETS LEAKED into logs or responses ({len(found)}):")
        for secret, line in found[:10]:
            print(f"  {secret[:3]}...: {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif OUTPUT:
        print(f"\nsecret scan: {len(OUTPUT)} log lines and bodies, no secret in any")


async def _record_body(request: web.Request, response: web.StreamResponse) -> None:
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        OUTPUT.append(response.body.decode(errors="replace"))


@pytest.fixture(autouse=True)
def json_logs() -> None:
    """JSON log lines in every test, as in production, whatever ran before."""
    logs.configure("info", "json")


@pytest.fixture
def store() -> Store:
    return seed(Store())


@pytest.fixture
async def sandbox(aiohttp_server: Any, store: Store) -> AsyncIterator[TestServer]:
    server: TestServer = await aiohttp_server(create_sandbox(store))
    store.base_url = str(server.make_url("")).rstrip("/")
    yield server
    creds = server.app[CREDENTIALS]  # tokens it issued are secrets too
    SECRETS.update(creds.issued, {creds.refresh_token})


@pytest.fixture
def faults(sandbox: TestServer) -> Faults:
    return sandbox.app[FAULTS]


@pytest.fixture
def config(sandbox: TestServer) -> Config:
    url = str(sandbox.make_url("")).rstrip("/")
    return load_config(ROOT / "config.example.yaml", env=gateway_env(url))


@pytest.fixture
def make_client(aiohttp_client: Any) -> Callable[[Config], Any]:
    async def make(config: Config) -> TestClient[web.Request, web.Application]:
        client: TestClient[web.Request, web.Application] = await aiohttp_client(create_app(config))
        return client

    return make


@pytest.fixture
async def client(make_client: Any, config: Config) -> TestClient[web.Request, web.Application]:
    return await make_client(config)  # type: ignore[no-any-return]


@pytest.fixture
def editable_files(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the example config and the Zendesk mapping, for tests that edit them."""
    (tmp_path / "mappings").mkdir()
    shutil.copy(ROOT / "config.example.yaml", tmp_path / "gateway.yaml")
    shutil.copy(ROOT / "mappings/zendesk.yaml", tmp_path / "mappings/zendesk.yaml")
    return tmp_path / "gateway.yaml", tmp_path / "mappings/zendesk.yaml"


def interaction(service_id: str, body: str = "My screen broke!", **more: Any) -> dict[str, Any]:
    return {
        "created": "2026-11-20T10:00:00Z",
        "body": body,
        "linkUrl": f"https://twitter.com/janedoe/status/{service_id}",
        "serviceId": service_id,
        "service": "twitter",
        "contentType": "post",
        "author": {
            "service": "twitter",
            "serviceId": "99",
            "handle": "janedoe",
            "name": "Jane Doe",
            "brandOwned": False,
        },
        **more,
    }


async def raw_http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (headers that are not UTF-8, bodies no client would build) to
    127.0.0.1:port; the status, headers and body of the answer. The request should ask for
    `Connection: close`."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunked(body)
    return int(status_line.split()[1]), headers, body


def _unchunked(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, data = out + rest[:n], rest[n + 2 :]
    return out


# -- real processes: `python -m gateway ...` on free local ports, stopped by the test's fixture --


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
    """Processes a test starts; each is stopped (SIGTERM, then SIGKILL) by its own pid."""
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


def start_demo(processes: list[subprocess.Popen[bytes]]) -> tuple[subprocess.Popen[bytes], int]:
    """`crm-gateway demo` as `make run` starts it, with no upstream or keys in the environment."""
    sandbox_port, port = free_port(), free_port()
    proc = gateway(
        "demo",
        *("--config", "config.example.yaml", "--port", str(port)),
        *("--sandbox-port", str(sandbox_port)),
        env=dict.fromkeys(
            (
                "GATEWAY_API_KEYS",
                "GATEWAY_ADMIN_KEY",
                "ZENDESK_URL",
                "ZENDESK_OAUTH_TOKEN",
                "EXPERTFLOW_API_KEYS",
                "EXPERTFLOW_ALLOW_ANONYMOUS",
            )
        ),
    )
    processes.append(proc)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    return proc, port
