"""The reference the gateway is measured against: the smallest honest aiohttp service for the
same routes, as one would write it by hand for one CRM.

- find customer: one shared `ClientSession` (as many connections as the gateway's shipped
  config allows), one GET of the user with its identities and organizations, a few fields
  remapped, JSON out;
- meta and /label: the same cached JSON the gateway answers, read once at start;
- every route checks the API key (in constant time), as the gateway must; uvloop; orjson, the
  gateway's own JSON library; no logging, no metrics, no retries, no deadlines.

Run by tests/bench/run.py: `python reference.py --port P --upstream URL --key K --email E
--token T --cached DIR` (DIR holds meta.json and label.json).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
JSON = "application/json"


def build(args: argparse.Namespace) -> web.Application:
    key = args.key.encode()
    basic = base64.b64encode(f"{args.email}/token:{args.token}".encode()).decode()
    meta = (Path(args.cached) / "meta.json").read_bytes()
    labels = (Path(args.cached) / "label.json").read_bytes()

    def allowed(request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get("Authorization", "").encode(), key)

    async def find_customer(request: web.Request) -> web.Response:
        if not allowed(request):
            return web.Response(status=401)
        user_id = request.match_info["id"]
        async with request.app[SESSION].get(
            f"/api/v2/users/{user_id}", params={"include": "identities,organizations"}
        ) as resp:
            if resp.status != 200:
                return web.Response(status=404 if resp.status == 404 else 502)
            data: dict[str, Any] = orjson.loads(await resp.read())
        user = data["user"]
        org = next(
            (o["name"] for o in data["organizations"] if o["id"] == user["organization_id"]), None
        )
        twitter = next((i["value"] for i in data["identities"] if i["type"] == "twitter"), None)
        url = f"{args.upstream}/agent/users/{user['id']}"
        out = {
            "id": str(user["id"]),
            "url": url,
            "uri": url,
            "name": user["name"],
            "email": user["email"],
            "phone": user["phone"],
            "externalId": user["external_id"],
            "organization": org,
            "twitter": twitter,
        }
        return web.Response(body=orjson.dumps(out), content_type=JSON)

    def cached(body: bytes) -> Any:
        async def handler(request: web.Request) -> web.Response:
            if not allowed(request):
                return web.Response(status=401)
            return web.Response(body=body, content_type=JSON)

        return handler

    async def session(app: web.Application) -> Any:
        app[SESSION] = aiohttp.ClientSession(
            base_url=args.upstream,
            headers={"Authorization": f"Basic {basic}", "Accept": JSON},
            connector=aiohttp.TCPConnector(limit=50),
        )
        yield
        await app[SESSION].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_get("/api/v1/customer/{id}", find_customer)
    app.router.add_get("/api/v1/meta/object/customer", cached(meta))
    app.router.add_get("/label", cached(labels))
    return app


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(build(args), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    await asyncio.Event().wait()  # until SIGTERM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--upstream", "--key", "--email", "--token", "--cached"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--port", type=int, required=True)
    uvloop.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
