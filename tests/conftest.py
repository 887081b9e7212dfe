"""Fixtures: a real sandbox CRM on a local port, and the gateway in front of it, configured the
way users configure it (config.example.yaml plus environment variables)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import logs
from gateway.app import create_app
from gateway.config import Config, load_config
from gateway.sandbox.demo import seed
from gateway.sandbox.server import FAULTS, Faults, create_sandbox
from gateway.sandbox.store import Store

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
API_KEY = "test-key-1"
SECOND_KEY = "test-key-2"
API = "/api/v1"
AUTH = {"Authorization": API_KEY}


def gateway_env(upstream_url: str, **more: str) -> dict[str, str]:
    return {
        "ZENDESK_URL": upstream_url,
        "ZENDESK_EMAIL": "demo@example.com",
        "ZENDESK_API_TOKEN": "sandbox-token",
        "GATEWAY_API_KEYS": f"{API_KEY},{SECOND_KEY}",
        **more,
    }


@pytest.fixture(autouse=True)
def json_logs() -> None:
    """JSON log lines in every test, as in production, whatever ran before."""
    logs.configure("info", "json")


@pytest.fixture
def store() -> Store:
    return seed(Store())


@pytest.fixture
async def sandbox(aiohttp_server: Any, store: Store) -> TestServer:
    server: TestServer = await aiohttp_server(create_sandbox(store))
    store.base_url = str(server.make_url("")).rstrip("/")
    return server


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
