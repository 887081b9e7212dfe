"""The command line: `crm-gateway serve`, `crm-gateway demo`, `crm-gateway sandbox`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from aiohttp import web

from gateway import logs, serving
from gateway.config import Config, load_config
from gateway.errors import ConfigError
from gateway.sandbox.demo import seed
from gateway.sandbox.server import Credentials, Faults, create_sandbox
from gateway.sandbox.store import Store

DEMO_KEY = "demo-key"
DEMO_ADMIN_KEY = "demo-admin-key"


def _load(path: str, host: str | None, port: int | None) -> Config:
    config = load_config(path)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    return Config(**{**config.__dict__, **overrides}) if overrides else config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crm-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Khoros API in front of the configured CRM")
    demo = sub.add_parser("demo", help="serve in front of the built-in sandbox CRM")
    for p in (serve, demo):
        p.add_argument("--config", required=True, help="the config file (YAML)")
        p.add_argument("--host", help="address to bind (default from config: 127.0.0.1)")
        p.add_argument("--port", type=int, help="port to bind (default from config: 8080)")
    serve.add_argument("--workers", type=int, default=1, help="processes to serve with")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    demo.add_argument("--sandbox-port", type=int, default=8081)
    sandbox = sub.add_parser("sandbox", help="run only the sandbox CRM, seeded with demo data")
    sandbox.add_argument("--port", type=int, default=8081)
    sandbox.add_argument("--delay", type=float, default=0.0, help="answer this much later")
    args = parser.parse_args(argv)

    if args.command == "sandbox":
        logs.configure()
        store = seed(Store(base_url=f"http://127.0.0.1:{args.port}"))
        app = create_sandbox(store, faults=Faults(delay=args.delay))
        web.run_app(app, host="127.0.0.1", port=args.port, print=None)
        return 0
    if args.command == "demo":
        # The sandbox's own credentials, and a demo key unless the caller set keys.
        creds = Credentials()
        os.environ["ZENDESK_URL"] = f"http://127.0.0.1:{args.sandbox_port}"
        os.environ["ZENDESK_EMAIL"] = creds.email
        os.environ["ZENDESK_API_TOKEN"] = creds.api_token
        os.environ.pop("ZENDESK_OAUTH_TOKEN", None)
        os.environ.setdefault("GATEWAY_API_KEYS", DEMO_KEY)
        os.environ.setdefault("GATEWAY_ADMIN_KEY", DEMO_ADMIN_KEY)
    try:
        config = _load(args.config, args.host, args.port)
    except ConfigError as exc:
        print(f"crm-gateway: invalid configuration\n{exc}", file=sys.stderr)
        return 1
    logs.configure(config.log_level, config.log_format)
    if args.command == "demo":
        base = f"http://{config.host}:{config.port}{config.base_path}"
        print(
            f"crm-gateway demo\n  Khoros API:  {base}\n  sandbox CRM: {os.environ['ZENDESK_URL']}"
            f"\n  API key:     {os.environ['GATEWAY_API_KEYS'].split(',')[0]}"
            f"\n  admin key:   {os.environ['GATEWAY_ADMIN_KEY']}\n"
            f"  try: curl -H 'Authorization: {DEMO_KEY}' {base}/customer/1001\n",
            flush=True,
        )
    if args.command == "serve" and args.workers > 1:
        return serving.supervise(config, args.workers)
    sandbox_port = args.sandbox_port if args.command == "demo" else None
    serving.run(
        serving.serve(
            config, sandbox_port=sandbox_port, worker=args.command == "serve" and args.worker
        )
    )
    return 0
