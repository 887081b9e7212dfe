"""Fixtures: a real sandbox CRM on a local port, and the gateway in front of it, configured the
way users configure it (config.example.yaml plus environment variables)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from gateway import logs
from gateway.app import create_app
from gateway.config import Config, Secret, defaults, load_config
from gateway.exchange import Response
from gateway.mapping.fanout import FanOutLimits
from gateway.sandbox.seed import seed
from gateway.sandbox.server import CREDENTIALS, FAULTS, Faults, create_sandbox
from gateway.sandbox.store import Store
from gateway.upstream.call import Call
from gateway.upstream.settings import BreakerSettings, RetrySettings
from gateway.upstream.tokens import OAuthClient

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
# none of the configured secrets may appear in it (see no_secret_in_any_output).
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
    return [json.loads(x) for x in output.splitlines() if x.startswith("{")]


def leaked(output: list[str], secrets: set[str]) -> list[tuple[str, str]]:
    return [(s, line[:200]) for line in output for s in secrets if s and s in line]


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_output(request: pytest.FixtureRequest) -> Iterator[None]:
    """The scan, once the process's last test has run. A fixture rather than a session hook:
    under pytest-xdist each worker is its own process with its own OUTPUT, and only an error
    raised in a worker fails the run."""
    yield
    found = leaked(OUTPUT, SECRETS)
    if found:
        shown = "\n".join(f"  {secret[:3]}...: {line}" for secret, line in found[:10])
        pytest.fail(f"SECRETS LEAKED into logs or responses ({len(found)}):\n{shown}")
    workeroutput = getattr(request.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its count goes to the controller
        workeroutput["scanned"] = len(OUTPUT)
    else:
        SCANNED.append(len(OUTPUT))


SCANNED: list[int] = []  # lines scanned, per process that ran tests


def pytest_testnodedown(node: Any, error: Any) -> None:
    """An xdist worker ended: keep its count for the summary."""
    SCANNED.append(node.workeroutput.get("scanned", 0))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if sum(SCANNED):
        terminalreporter.write_line(
            f"secret scan: {sum(SCANNED)} log lines and bodies in {len(SCANNED)} process(es),"
            " no secret in any"
        )


async def _record_body(request: web.Request, response: web.StreamResponse) -> None:
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        OUTPUT.append(response.body.decode(errors="replace"))


@pytest.fixture(autouse=True)
def json_logs() -> None:
    """JSON log lines in every test, as in production, whatever ran before."""
    logs.configure("info", "json")


@pytest.fixture(autouse=True)
def no_tracing_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing only where a test turns it on: an OTEL_* variable of the shell running the suite
    would send every gateway's spans somewhere."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def store() -> Store:
    return seed(Store())


@pytest.fixture
async def sandbox(aiohttp_server: Any, store: Store) -> AsyncIterator[TestServer]:
    server: TestServer = await aiohttp_server(create_sandbox(store))
    store.base_url = str(server.make_url("")).rstrip("/")
    yield server
    creds = server.app[CREDENTIALS]  # tokens it issued are secrets too
    SECRETS.update(creds.issued, creds.deleted, {creds.refresh_token})


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


# The settings a config file leaves at their defaults (gateway/schema/config.yaml).
DEFAULT_RETRY = RetrySettings(**defaults("upstream", "retry"))
DEFAULT_BREAKER = BreakerSettings(**defaults("upstream", "circuit_breaker"))
DEFAULT_FAN_OUT = FanOutLimits(**defaults("bestmatch"))


def tuned(config: Config, **sections: Any) -> Config:
    """``config`` with some settings changed, by section: ``tuned(c, upstream={"max_in_flight":
    2})``. A dict changes those fields of the section; anything else replaces it whole."""
    changes = {
        name: dataclasses.replace(getattr(config, name), **value)
        if isinstance(value, dict) and dataclasses.is_dataclass(getattr(config, name))
        else value
        for name, value in sections.items()
    }
    return dataclasses.replace(config, **changes)


def budgets(config: Config, **seconds: float) -> Config:
    """``config`` whose budgets are these seconds exactly (``default=0.5``, ``meta=3``)."""
    given = {f"{kind}_seconds": value for kind, value in seconds.items()}
    return tuned(config, deadlines={**given, "share": 1.0})


FAST_BUDGET = 2.0  # the `fast` config's budget, in seconds


@pytest.fixture
def fast(config: Config) -> Config:
    """Budgets short enough for tests; the policy is the production one, scaled down, and the
    breaker out of the way (its own tests set it)."""
    retry = RetrySettings(
        attempts=3,
        backoff_start_seconds=0.05,
        backoff_max_seconds=0.2,
        max_retry_after_seconds=30,
        min_attempt_seconds=0.1,
    )
    breaker = dataclasses.replace(DEFAULT_BREAKER, min_requests=1000)
    upstream = {"attempt_timeout_seconds": 0.5, "retry": retry, "circuit_breaker": breaker}
    return tuned(budgets(config, default=FAST_BUDGET), upstream=upstream)


@pytest.fixture
async def gw(make_client: Any, fast: Config) -> Any:
    """A gateway on the `fast` config, with the field definitions cached, so that faults hit
    the call under test."""
    client = await make_client(fast)
    for kind in ("customer", "case"):
        assert (await client.get(f"{API}/meta/object/{kind}", headers=AUTH)).status == 200
    return client


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


# -- the upstream layers' unit tests: time that moves only when asked, scripted answers --------

# An OAuth client of a token endpoint that the tests fake (its secrets are not the suite's).
OAUTH_CLIENT = OAuthClient("/oauth/tokens", Secret("id"), Secret("client-secret"), 300)


class FakeClock:
    """A clock for the upstream layers: time moves when a layer sleeps or the test advances it,
    so waits of minutes take no time and every assertion on time is exact."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would

    def advance(self, seconds: float) -> None:
        self.now += seconds


def answer(status: int = 200, data: Any = None, **headers: str) -> Response:
    """An upstream answer; header names with `_` for `-` (``Retry_After="5"``)."""
    proxy = CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()}))
    text = "" if data is None else json.dumps(data)
    return Response(status, proxy, data, text)


Script = Response | BaseException | Callable[[Call], Any]


class FakeTransport:
    """Answers each attempt with the next item of a script (the last one repeats): a Response,
    an exception to raise, or a function of the call (async ones may hang until cancelled)."""

    def __init__(self, *script: Script) -> None:
        self.script = list(script)
        self.calls: list[Call] = []

    async def send(self, call: Call) -> Response:
        self.calls.append(call)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if callable(item) and not isinstance(item, BaseException):
            item = item(call)
            if asyncio.iscoroutine(item):
                item = await item
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, Response)
        return item

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


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


def alias_bomb(levels: int) -> str:
    """YAML of a few lines that a loader expanding its aliases makes 10**levels values of (a
    "billion laughs" at 9): each level a list of ten aliases of the one before."""
    lines = ["lol0: &lol0 [lol]"]
    for i in range(1, levels + 1):
        lines.append(f"lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.fixture
def client_timeouts(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientTimeout]:
    """The ClientTimeout of every request any aiohttp session makes from here on."""
    seen: list[aiohttp.ClientTimeout] = []
    original = aiohttp.ClientSession._request

    def spy(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["timeout"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "_request", spy)
    return seen


def never_rounded(timeout: aiohttp.ClientTimeout) -> bool:
    """Does aiohttp set the deadline of this timeout to its `total`, to the millisecond? It
    rounds a timeout over the ClientTimeout's `ceil_threshold` (5 s by default) up to a whole
    second of the loop's clock."""
    from aiohttp.helpers import ceil_timeout

    assert timeout.total is not None
    expected = asyncio.get_running_loop().time() + timeout.total
    when = ceil_timeout(timeout.total, timeout.ceil_threshold).when()
    return when is not None and abs(when - expected) < 0.001


# -- real processes: `python -m gateway ...` on free local ports, stopped by the test's fixture --


# Under pytest-xdist each worker takes its ports from its own range, below the kernel's
# ephemeral ones (where port 0 binds land): two workers never pick the same free port in the
# moment before a process they start binds it.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_PORTS = iter(range(0))
if _WORKER.startswith("gw") and _WORKER[2:].isdigit():
    _first = 10_000 + 1_500 * (int(_WORKER[2:]) % 15)
    _PORTS = itertools.cycle(range(_first, _first + 1_500))


def free_port() -> int:
    for port in itertools.islice(_PORTS, 1_500):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
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


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m gateway ARGS` to its end (a tool: check, register), with only ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


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
    *args: str,
    env: dict[str, str | None] | None = None,
    quiet: bool = False,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`python -m gateway ARGS`; env values of None remove the variable. Its output is a pipe
    the test reads, (quiet) discarded, or appended to the file ``log``: a pipe nobody reads
    fills up, and the gateway then drops its log lines (test_logwriter.py). Read a log with
    `read_log`, which also scans it."""
    merged = {**os.environ, **(env or {})}
    out: Any = subprocess.DEVNULL if quiet else subprocess.PIPE
    if log is not None:
        out = log.open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            cwd=ROOT,
            env={k: v for k, v in merged.items() if v is not None},
            stdout=out,
            stderr=subprocess.DEVNULL if quiet else subprocess.STDOUT,
        )
    finally:
        if log is not None:
            out.close()


_HOST_LOCK_HOLDER = """
import asyncio, sys
from pathlib import Path
from gateway.fleet.host_files import HostFiles
from gateway.fleet.host_locks import HostLocks

async def main() -> None:
    async with HostLocks(HostFiles(Path(sys.argv[1]))).hold(sys.argv[2], 60):
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def host_lock_holder(state_dir: Path, key: str) -> subprocess.Popen[bytes]:
    """Another process holding ``key`` among the host's write locks in ``state_dir`` (as a
    worker of one supervisor would), once this returns; add it to `processes`."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOST_LOCK_HOLDER, str(state_dir), key],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert await asyncio.to_thread(holder.stdout.readline) == b"held\n"
    return holder


def read_log(log: Path) -> list[dict[str, Any]]:
    """The JSON lines a process wrote to its log file; they join the end-of-run secret scan."""
    text = log.read_text() if log.exists() else ""
    OUTPUT.extend(text.splitlines())
    return events(text)


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


# -- both upstreams: the Zendesk sandbox always, a real RT5 when RT5_URL is set --------------


@dataclass
class Upstream:
    """A gateway client in front of one upstream, and what a scenario does upstream itself:
    read a case's texts, and make data (as agents or other systems would) in bulk."""

    name: str
    client: Any
    label_change: dict[str, str]  # the customer change that gives the label "Gold"
    comments: Callable[[str], Awaitable[list[str]]]  # the texts on a case, every one
    add_replies: Callable[[str, int], Awaitable[None]]  # agent replies on a case
    add_cases: Callable[[str, int], Awaitable[None]]  # cases of a customer
    add_customers: Callable[[list[str]], Awaitable[None]]  # customers with these phones
    config: Config  # the gateway's, for scenarios that change a setting


def someone() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    phone = "+4179" + "".join(random.choices("0123456789", k=7))
    return {"name": f"Scenario {tag}", "email": f"scenario-{tag}@example.com", "phone": phone,
            "externalId": f"EXT-{tag}"}  # fmt: skip


async def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status == status, await resp.text()
    return None if status == 204 else await resp.json()


def _sandbox_upstream(client: Any, store: Store, config: Config) -> Upstream:
    async def comments(case_id: str) -> list[str]:
        return [c["body"] for c in store.comments[int(case_id)]]

    async def add_replies(case_id: str, n: int) -> None:
        for i in range(n):
            store.update_ticket(int(case_id), {"comment": {"body": f"Agent reply {i}"}})

    async def add_cases(customer_id: str, n: int) -> None:
        for i in range(n):
            data = {"requester_id": int(customer_id), "subject": f"Old case {i}",
                    "comment": {"body": "Earlier."}}  # fmt: skip
            store.create_ticket(data, None)

    async def add_customers(phones: list[str]) -> None:
        for phone in phones:
            store.create_user({"name": f"Decoy {uuid.uuid4().hex[:6]}", "phone": phone})

    return Upstream("zendesk", client, {"vip_level": "gold"}, comments, add_replies, add_cases,
                    add_customers, config)  # fmt: skip


NO_RT5 = "no Request Tracker 5: `make test-rt5` starts one and sets RT5_URL"


def rt5_env() -> dict[str, str] | None:
    """The gateway's environment for the real RT5 `make test-rt5` started; None without one."""
    url = os.environ.get("RT5_URL")
    if not url:
        return None
    return {
        **gateway_env(url),
        "RT5_URL": url,
        "RT5_USER": os.environ["RT5_USER"],
        "RT5_PASSWORD": os.environ["RT5_PASSWORD"],
    }


class RT5:
    """Request Tracker's REST2 API itself, as its own agents and tools reach it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.rest = f"{env['RT5_URL']}/REST/2.0"
        self.auth = aiohttp.BasicAuth(env["RT5_USER"], env["RT5_PASSWORD"])

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        async with (
            aiohttp.ClientSession(auth=self.auth) as s,
            s.request(method, self.rest + path, **kw) as r,
        ):
            assert r.status < 300, await r.text()
            return await r.json()

    async def comments(self, case_id: str) -> list[str]:
        """The texts on a ticket, every one."""
        texts, page = [], 1
        while True:
            params = {"fields": "Content", "per_page": "100", "page": str(page)}
            got = await self.call("GET", f"/ticket/{case_id}/attachments", params=params)
            texts += [i["Content"] for i in got["items"] if i.get("Content")]
            if not got.get("next_page"):
                return texts
            page += 1

    async def tickets(self, query: str) -> list[str]:
        """The ids of the tickets a TicketSQL query finds."""
        got = await self.call("GET", "/tickets", params={"query": query, "per_page": "100"})
        return [str(t["id"]) for t in got["items"]]


def _rt5_upstream(client: Any, rt: RT5, config: Config) -> Upstream:
    call, comments = rt.call, rt.comments

    async def in_parallel(calls: list[Awaitable[Any]]) -> None:
        for at in range(0, len(calls), 4):  # RT runs 2 workers: a few at once
            await asyncio.gather(*calls[at : at + 4])

    async def add_replies(case_id: str, n: int) -> None:
        path = f"/ticket/{case_id}/comment"
        replies = [{"ContentType": "text/plain", "Content": f"Agent reply {i}"} for i in range(n)]
        await in_parallel([call("POST", path, json=reply) for reply in replies])

    async def add_cases(customer_id: str, n: int) -> None:
        user = await call("GET", f"/user/{customer_id}")
        body = {"Queue": "General", "Requestor": user["EmailAddress"], "Content": "Earlier.",
                "ContentType": "text/plain"}  # fmt: skip
        await in_parallel(
            [call("POST", "/ticket", json={**body, "Subject": f"Old case {i}"}) for i in range(n)]
        )

    async def add_customers(phones: list[str]) -> None:
        def user(phone: str) -> dict[str, Any]:
            name = f"decoy-{uuid.uuid4().hex[:10]}@example.com"
            return {"Name": name, "EmailAddress": name, "CustomFields": {"Phone": phone}}

        # In order: RT lists users by id, and scenarios place a record at a given position.
        for phone in phones:
            await call("POST", "/user", json=user(phone))

    return Upstream("rt5", client, {"label": "Gold"}, comments, add_replies, add_cases,
                    add_customers, config)  # fmt: skip


@pytest.fixture(params=["zendesk", "rt5"])
async def upstream(
    request: pytest.FixtureRequest, make_client: Any, store: Store, config: Config
) -> Upstream:
    if request.param == "zendesk":
        return _sandbox_upstream(await make_client(config), store, config)
    env = rt5_env()
    if env is None:
        pytest.skip(NO_RT5)
    rt_config = load_config(ROOT / "config.rt5.example.yaml", env=env)
    return _rt5_upstream(await make_client(rt_config), RT5(env), rt_config)


# -- a fake Khoros Marketing: its OAuth2 token endpoint and the registration API ----------------


@dataclasses.dataclass
class FakeKhoros:
    """Issues a token for one client (client-credentials grant, HTTP Basic as RFC 6749 §2.3.1)
    and accepts registrations made with it. Records what it was sent."""

    url: str = ""
    client_id: str = "khoros-client"
    client_secret: str = "khoros-client-s3cret"
    issued: str = "khoros-issued-t0ken"
    grants: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    registrations: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth2/token"

    @property
    def api_url(self) -> str:
        return f"{self.url}/v2/crm"

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        header = request.headers.get("Authorization", "")
        self.grants.append({"form": form, "authorization": header})
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if header != f"Basic {expected}":
            error = {"error": "invalid_client", "error_description": "Client authentication failed"}
            return web.json_response(error, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        answer = {"access_token": self.issued, "token_type": "bearer", "expires_in": 3600}
        return web.json_response(answer, headers={"Cache-Control": "no-store"})

    async def register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.registrations.append(
            {
                "method": request.method,
                "path": request.path,
                "authorization": request.headers.get("Authorization"),
                "body": body,
            }
        )
        if request.headers.get("Authorization") != f"Bearer {self.issued}":
            return web.json_response({"error": "unauthorized"}, status=401)
        # Echoes the key, as an API might: register must not print it.
        return web.json_response({"id": 4711, **body})


@pytest.fixture
async def khoros(aiohttp_server: Any) -> FakeKhoros:
    fake = FakeKhoros()
    app = web.Application()
    app.router.add_post("/oauth2/token", fake.token)
    app.router.add_post("/v2/crm/admin/custom", fake.register)
    app.router.add_patch("/v2/crm/admin/custom/{crm_id}", fake.register)
    server: TestServer = await aiohttp_server(app)
    fake.url = str(server.make_url("")).rstrip("/")
    SECRETS.update({fake.client_secret, fake.issued})
    return fake


# -- a real Redis: Debian's redis-server on 127.0.0.1, installed when missing ----------------


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """redis-server, installed with apt-get when missing (as tests/rt5/rt5.sh installs RT)."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        lock = ("-o", "DPkg::Lock::Timeout=600")
        subprocess.run(["apt-get", "-qq", *lock, "update"], env=quiet, capture_output=True)
        subprocess.run(
            ["apt-get", "-qq", *lock, "install", "-y", "--no-install-recommends", "redis-server"],
            env=quiet,
            capture_output=True,
        )
        found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    if found is None:
        pytest.skip("redis-server is not installed and could not be (needs root and apt-get)")
    return found


class RedisServer:
    """One redis-server on a free local port with its own directory, no persistence."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--save", "", "--appendonly", "no",
            "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while not self.ping():
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def pause(self) -> None:
        """SIGSTOP: a stalled Redis (a long fork, a swapped-out host). Clients' connections
        stay open and what they send waits in its socket, to be run on `resume`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGKILL, as a crash would: clients see their connections drop."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def redis_server(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary, tmp_path / "redis")
    server.start()
    yield server
    server.stop()  # SIGKILL ends a paused one too


# -- a fleet of gateway processes in front of one in-process sandbox --------------------------

# Every call the sandbox answered: (wall-clock start, answered, method, path, status).
TIMELINE: web.AppKey[list[tuple[float, float, str, str, int]]] = web.AppKey("timeline", list)


@web.middleware
async def _timeline(request: web.Request, handler: Any) -> web.StreamResponse:
    started = time.time()
    response: web.StreamResponse = await handler(request)
    request.app[TIMELINE].append(
        (started, time.time(), request.method, request.path, response.status)
    )
    return response


@pytest.fixture
async def watched_sandbox(aiohttp_server: Any, store: Store) -> AsyncIterator[TestServer]:
    """The sandbox, in this process (faults and credentials at hand) for gateway processes to
    call, with a timeline of the calls it answered (when, what, which status)."""
    app = create_sandbox(store)
    app[TIMELINE] = []
    app.middlewares.insert(0, _timeline)
    server: TestServer = await aiohttp_server(app)
    store.base_url = str(server.make_url("")).rstrip("/")
    yield server
    creds = server.app[CREDENTIALS]
    SECRETS.update(creds.issued, creds.deleted, {creds.refresh_token})


def process_config(
    tmp_path: Path, base: str = "config.example.yaml", **sections: dict[str, Any]
) -> Path:
    """An example config (``base``) with some sections changed (merged one level deep), for
    gateway processes: the mapping is the repository's."""
    import yaml

    data = yaml.safe_load((ROOT / base).read_text())
    data["upstream"]["mapping"] = str(ROOT / data["upstream"]["mapping"])
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    path = tmp_path / f"gateway-{len(list(tmp_path.glob('gateway-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def until_up(port: int, timeout: float = 30) -> None:
    """Wait for a gateway process's /healthz without blocking this test's event loop."""
    await asyncio.to_thread(wait_for, f"http://127.0.0.1:{port}/healthz", None, timeout)


# -- a local OTLP collector: what gateways export over OTLP/HTTP, decoded ---------------------


@dataclass
class Span:
    """One span as the collector received it (ids in hex, as W3C's traceparent writes them)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str  # SERVER, CLIENT, ...
    attributes: dict[str, Any]
    error: bool  # its status is ERROR
    resource: dict[str, Any]


@dataclass
class Collector:
    """Accepts `POST /v1/traces` (protobuf, as the OTLP/HTTP exporter sends it) and keeps the
    spans and the headers of each export."""

    url: str = ""
    spans: list[Span] = dataclasses.field(default_factory=list)
    headers: list[dict[str, str]] = dataclasses.field(default_factory=list)

    async def receive(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp
        from opentelemetry.proto.trace.v1 import trace_pb2

        assert request.headers["Content-Type"] == "application/x-protobuf"
        self.headers.append(dict(request.headers))
        export = otlp.ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope in resource_spans.scope_spans:
                for s in scope.spans:
                    self.spans.append(
                        Span(
                            name=s.name,
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_id=s.parent_span_id.hex() or None,
                            kind=trace_pb2.Span.SpanKind.Name(s.kind).removeprefix("SPAN_KIND_"),
                            attributes=_attributes(s.attributes),
                            error=s.status.code == trace_pb2.Status.STATUS_CODE_ERROR,
                            resource=resource,
                        )
                    )
        body = otlp.ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=body, content_type="application/x-protobuf")

    def of_kind(self, kind: str) -> list[Span]:
        return [s for s in self.spans if s.kind == kind]

    async def until(self, count: int, timeout: float = 15) -> list[Span]:
        """The spans, once there are at least ``count``."""
        end = time.monotonic() + timeout
        while len(self.spans) < count:
            assert time.monotonic() < end, f"{len(self.spans)} spans, not {count}"
            await asyncio.sleep(0.02)
        return self.spans


def _attributes(pairs: Any) -> dict[str, Any]:
    return {
        kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value") for kv in pairs
    }


@pytest.fixture
async def collector(aiohttp_server: Any) -> Collector:
    found = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", found.receive)
    server: TestServer = await aiohttp_server(app)
    found.url = str(server.make_url("")).rstrip("/")
    return found


@pytest.fixture
def tracing_env(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> Collector:
    """Tracing on for the gateways this test makes in this process: spans go to ``collector``
    (after 50 ms, or at the app's shutdown)."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    return collector
