"""The command line: `crm-gateway serve`, `crm-gateway demo`, `crm-gateway sandbox`, and the
integrator's `check`, `explain` and `register`.

Where to listen comes from, strongest first: a flag (`--host`, `--port`, `--workers`), the
environment (`GATEWAY_HOST`, `GATEWAY_PORT`, `GATEWAY_WORKERS`), the config file; the config
file itself from `--config` or `GATEWAY_CONFIG`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway import check, explain, logs, register, serving, shipped, signals
from gateway.config import Listen, load_config
from gateway.errors import ConfigError
from gateway.explain import EXPLAINED
from gateway.sandbox import demo


def _number(env: Mapping[str, str], name: str, highest: int) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= highest:
        problem = f"{raw!r} is not a whole number from 1 to {highest}"
        raise ConfigError("environment", None, name, problem)
    return int(raw)


@dataclass(frozen=True)
class Environment:
    """The GATEWAY_* variables of a deployment; None where unset or empty."""

    host: str | None
    port: int | None
    workers: int | None
    log_queue_lines: int | None


def from_environment(env: Mapping[str, str]) -> Environment:
    return Environment(
        host=env.get("GATEWAY_HOST", "").strip() or None,
        port=_number(env, "GATEWAY_PORT", 65535),
        workers=_number(env, "GATEWAY_WORKERS", 64),
        log_queue_lines=_number(env, "GATEWAY_LOG_QUEUE_LINES", 10_000_000),
    )


def _start_writer(env: Environment) -> None:
    """Serving processes log through a background writer: a stalled stdout costs log lines,
    never requests."""
    if env.log_queue_lines is None:
        logs.start_writer()
    else:
        logs.start_writer(capacity=env.log_queue_lines)


def _tool(args: argparse.Namespace) -> int:
    """The integrator's commands: output on stdout, exit 0 or 1."""
    logs.configure("warning", "console")
    if args.command == "register":
        try:
            return asyncio.run(
                register.register(args.name, args.instance_url, update=args.update, out=sys.stdout)
            )
        except register.RegisterError as exc:
            print(f"crm-gateway register: {exc}", file=sys.stderr)
            return 1
    out = sys.stdout if args.command == "check" else sys.stderr
    code, config = check.check(args.config, out=out)
    if config is None:
        return code
    try:
        from_environment(os.environ)
    except ConfigError as exc:
        print(exc, file=out)
        return 1
    if args.command == "check":
        print(f"ok: {config.file} and {config.upstream.mapping} are valid")
        return asyncio.run(check.check_online(config, sys.stdout)) if args.online else code
    raw = args.body
    try:
        body = json.loads(Path(raw[1:]).read_text() if raw.startswith("@") else raw)
    except (OSError, ValueError) as exc:
        print(f"crm-gateway explain: --body is not JSON: {exc}", file=sys.stderr)
        return 1
    return asyncio.run(
        explain.explain(
            config,
            args.operation,
            id=args.id,
            body=body,
            kind=args.type,
            live=args.live,
            out=sys.stdout,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="crm-gateway", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"crm-gateway {shipped.version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Khoros API in front of the configured CRM")
    demo_ = sub.add_parser("demo", help="serve in front of the built-in sandbox CRM")
    check = sub.add_parser("check", help="validate the config and mapping, as start-up does")
    explain = sub.add_parser("explain", help="show the upstream requests of an operation")
    for p in (serve, demo_, check, explain):
        p.add_argument("--config", help="the config file (YAML); default: $GATEWAY_CONFIG")
    for p in (serve, demo_):
        p.add_argument("--host", help="address to bind (else $GATEWAY_HOST, else the config)")
        p.add_argument("--port", type=int, help="port (else $GATEWAY_PORT, else the config)")
    serve.add_argument("--workers", type=int, help="processes (else $GATEWAY_WORKERS, else 1)")
    serve.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    # A worker's listening socket, line to the supervisor and shared directory, from it.
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--line-fd", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--state-dir", help=argparse.SUPPRESS)
    demo_.add_argument("--sandbox-port", type=int, default=demo.SANDBOX_PORT)
    check.add_argument("--online", action="store_true", help="also compare with the upstream")
    explain.add_argument("operation", choices=list(EXPLAINED))
    explain.add_argument("--body", default="{}", help="the request body: JSON, or @file")
    explain.add_argument("--id", default="1", help="the record id (or phone) in the URL")
    explain.add_argument("--type", default="customer", choices=["customer", "case"])
    explain.add_argument("--live", action="store_true", help="send the requests for real")
    register = sub.add_parser("register", help="register the gateway with Khoros Marketing")
    register.add_argument("--name", required=True, help="the CRM's name in Khoros")
    register.add_argument("--instance-url", required=True, help="https://<host><base_path>")
    register.add_argument("--update", metavar="CRM_ID", help="change this registration")
    demo.sandbox_arguments(sub.add_parser("sandbox", help="run only the sandbox CRM, seeded"))
    args = parser.parse_args(argv)
    if args.command not in ("serve", "demo"):
        signals.release()  # only a serving process acts on the signals it caught itself
    if "config" in args and not args.config:
        args.config = os.environ.get("GATEWAY_CONFIG", "").strip()
        if not args.config:
            parser.error(f"{args.command} needs --config FILE, or GATEWAY_CONFIG set to one")

    if args.command in ("check", "explain", "register"):
        return _tool(args)
    if args.command == "sandbox":
        return demo.run_sandbox(args)
    if args.command == "demo":
        demo.environment(os.environ, args.sandbox_port)
    try:
        env = from_environment(os.environ)
        port = env.port if args.port is None else args.port
        config = load_config(args.config, listen=Listen(args.host or env.host, port))
    except ConfigError as exc:
        print(f"crm-gateway: invalid configuration\n{exc}", file=sys.stderr)
        return 1
    logs.configure(config.logging.level, config.logging.format)
    if args.command == "demo":
        print(demo.banner(config, os.environ), flush=True)
    _start_writer(env)
    worker = args.command == "serve" and args.worker
    if worker and args.listen_fd is not None:
        sock = socket.socket(fileno=args.listen_fd)  # bound by the supervisor
    else:
        try:
            sock = serving.listen(config.server.host, config.server.port)
        except serving.PortInUse as exc:
            print(f"crm-gateway: {exc}", file=sys.stderr)
            return 1
    # A worker is one process, whatever GATEWAY_WORKERS its supervisor passed on to it.
    if args.command == "serve" and not worker:
        workers = args.workers if args.workers is not None else env.workers or 1
        if workers > 1:
            return serving.supervise(config, workers, sock)
    if args.command == "demo":
        serving.run(demo.serve(config, sock, args.sandbox_port))
        return 0
    line = socket.socket(fileno=args.line_fd) if worker and args.line_fd is not None else None
    state_dir = args.state_dir if worker else None
    serving.run(serving.serve(config, sock, worker=worker, line=line, state_dir=state_dir))
    return 0
