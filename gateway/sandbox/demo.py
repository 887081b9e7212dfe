"""The demo (`make run` without a CRM): the sandbox seeded with demo data, and the gateway in
front of it, configured through the environment the shipped config reads. Also the `sandbox`
command, which serves the sandbox alone. Everything that names the sandbox's CRM is here, so
that the gateway's own modules name none."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import MutableMapping

from aiohttp import web

from gateway import logs, serving
from gateway.config import Config
from gateway.sandbox.limits import Limits
from gateway.sandbox.seed import seed
from gateway.sandbox.server import Credentials, Faults, create_sandbox
from gateway.sandbox.store import Store

DEMO_KEY = "demo-key"
DEMO_ADMIN_KEY = "demo-admin-key"
SANDBOX_PORT = 8081


def environment(env: MutableMapping[str, str], sandbox_port: int) -> None:
    """The variables config.example.yaml reads, pointed at the sandbox: its own credentials, and
    demo keys unless the caller set keys."""
    creds = Credentials()
    env["ZENDESK_URL"] = sandbox_url(sandbox_port)
    env["ZENDESK_EMAIL"] = creds.email
    env["ZENDESK_API_TOKEN"] = creds.api_token
    env.pop("ZENDESK_OAUTH_TOKEN", None)
    env.setdefault("GATEWAY_API_KEYS", DEMO_KEY)
    env.setdefault("GATEWAY_ADMIN_KEY", DEMO_ADMIN_KEY)
    if not env.get("EXPERTFLOW_API_KEYS"):
        # Demo data only: Hybrid Chat's endpoints answer without a key, and the banner says so.
        env.setdefault("EXPERTFLOW_ALLOW_ANONYMOUS", "true")


def sandbox_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def banner(config: Config, env: MutableMapping[str, str]) -> str:
    """What the demo prints at start: where everything is, and the keys to try it with."""
    server = config.server
    base = f"http://{server.host}:{server.port}{server.base_path}"
    hybrid_chat = f"http://{server.host}:{server.port}{config.expertflow.path_prefix}"
    return (
        f"crm-gateway demo\n  Khoros API:  {base}\n  sandbox CRM: {env['ZENDESK_URL']}"
        f"\n  API key:     {env['GATEWAY_API_KEYS'].split(',')[0]}"
        f"\n  admin key:   {env['GATEWAY_ADMIN_KEY']}\n"
        f"  try: curl -H 'Authorization: {DEMO_KEY}' {base}/customer/1001\n"
        f"  Hybrid Chat: {hybrid_chat}/customer?query=phone:{{refId}}\n"
        f"               {_hybrid_chat_access(config)}\n"
    )


def _hybrid_chat_access(config: Config) -> str:
    if config.expertflow.allow_anonymous:
        return "anonymous access allowed: demo data only (EXPERTFLOW_ALLOW_ANONYMOUS)"
    if config.expertflow.api_keys:
        return "needs &api_key=<one of EXPERTFLOW_API_KEYS>"
    return "answers 401: set EXPERTFLOW_API_KEYS"


async def serve(config: Config, sock: socket.socket, sandbox_port: int) -> None:
    """The sandbox on ``sandbox_port``, and the gateway on ``sock`` until it is stopped."""
    store = seed(Store(base_url=sandbox_url(sandbox_port)))
    sandbox = web.AppRunner(create_sandbox(store), access_log=None)
    await sandbox.setup()
    await web.TCPSite(sandbox, "127.0.0.1", sandbox_port).start()
    try:
        await serving.serve(config, sock)
    finally:
        await sandbox.cleanup()


# -- `crm-gateway sandbox`: the sandbox alone ------------------------------------------------------


def sandbox_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=SANDBOX_PORT)
    parser.add_argument("--delay", type=float, default=0.0, help="answer this much later")
    parser.add_argument("--status", type=int, help="answer every API call with this status")
    parser.add_argument("--retry-after", help="the Retry-After header of those answers")
    limits = Limits()
    parser.add_argument(
        "--account-limit",
        type=int,
        default=limits.account_per_minute,
        help="requests a minute for the account, as Zendesk plans have them (0: no limit)",
    )
    parser.add_argument(
        "--user-update-limit",
        type=int,
        default=limits.user_updates_per_minute,
        help="updates of one user a minute (0: no limit)",
    )
    parser.add_argument(
        "--ticket-update-limit",
        type=int,
        default=limits.ticket_updates_per_10_minutes,
        help="updates of one ticket in 10 minutes (0: no limit)",
    )


def run_sandbox(args: argparse.Namespace) -> int:
    logs.configure()
    logs.start_writer()
    store = seed(Store(base_url=sandbox_url(args.port)))
    store.limits = Limits(args.account_limit, args.user_update_limit, args.ticket_update_limit)
    faults = Faults(delay=args.delay, status=args.status, retry_after=args.retry_after)
    serving.run(_sandbox(create_sandbox(store, faults=faults), args.port))
    return 0


async def _sandbox(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
