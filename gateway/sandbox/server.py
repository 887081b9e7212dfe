"""A Zendesk-compatible HTTP server for the endpoints the mapping uses. `make run` and the
integration tests put the gateway in front of it; `faults` lets tests make it slow or fail."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.sandbox.rules import ZendeskError
from gateway.sandbox.search import compile_query
from gateway.sandbox.store import Store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Faults:
    """Test levers. A fault applies to the requests whose method and path match, the next
    `times` of them (None: every one until changed)."""

    delay: float = 0.0  # before handling: a slow or hanging upstream
    delay_after: float = 0.0  # after handling: the write is applied, the answer comes late
    status: int | None = None  # answer this status instead of handling
    body: str | None = None  # the body of that answer (default: a Zendesk JSON error)
    content_type: str = "application/json"
    retry_after: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # more headers of that answer
    reset: bool = False  # drop the connection without an answer
    garbage: bool = False  # answer 200 with a body that is not JSON
    method: str | None = None
    path_prefix: str = "/api/v2/"
    times: int | None = None

    def take(self, request: web.Request) -> bool:
        """Does a fault apply to this request? Counts it against `times`."""
        if self.method and request.method != self.method:
            return False
        if not request.path.startswith(self.path_prefix) or self.times == 0:
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass
class Credentials:
    """What the sandbox accepts: an API token, a fixed OAuth token, and OAuth tokens it issued
    through the refresh_token grant. They expire, and each refresh deletes the previous access
    and refresh tokens, as Zendesk's does ("A successful request will also return a refresh
    token and delete the previous access and refresh tokens"). Harsher where Zendesk is
    silent: the fixed token counts as the first access token, so the first refresh deletes it."""

    email: str = "demo@example.com"
    api_token: str = "sandbox-token"
    oauth_token: str = "sandbox-oauth-token"
    client_id: str = "sandbox-client"
    client_secret: str = "sandbox-secret"
    refresh_token: str = "sandbox-refresh-token"
    token_ttl: float = 7200.0
    issued: dict[str, float] = field(default_factory=dict)  # access token -> expiry
    refreshes: int = 0
    deleted: set[str] = field(default_factory=set)  # tokens a refresh deleted (still secrets)

    def accepts(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            fixed = value == self.oauth_token and self.oauth_token not in self.deleted
            return fixed or self.issued.get(value, 0) > time.monotonic()
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value).decode()
            except ValueError:
                return False
            return decoded == f"{self.email}/token:{self.api_token}"
        return False

    def grant(self, body: dict[str, Any]) -> dict[str, Any]:
        if (
            body.get("grant_type") != "refresh_token"
            or body.get("client_id") != self.client_id
            or body.get("client_secret") != self.client_secret
            or body.get("refresh_token") != self.refresh_token
        ):
            raise ZendeskError(
                400, {"error": "invalid_grant", "error_description": "The grant is not valid"}
            )
        self.refreshes += 1
        self.deleted.update(self.issued, {self.oauth_token, self.refresh_token})
        self.issued.clear()
        access = secrets.token_hex(16)
        self.refresh_token = secrets.token_hex(16)
        self.issued[access] = time.monotonic() + self.token_ttl
        return {
            "access_token": access,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.token_ttl,
        }


STORE: web.AppKey[Store] = web.AppKey("store", Store)
FAULTS: web.AppKey[Faults] = web.AppKey("faults", Faults)
CREDENTIALS: web.AppKey[Credentials] = web.AppKey("credentials", Credentials)
CALLS: web.AppKey[list[str]] = web.AppKey("calls", list)


@dataclass
class Load:
    """Requests being handled now, and the most at once: what a client's cap really allowed."""

    now: int = 0
    peak: int = 0


LOAD: web.AppKey[Load] = web.AppKey("load", Load)


def _answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(_present(data), status=status, headers=headers)


def _present(data: Any) -> Any:
    """Leave out null values: the official OpenAPI types most of them as non-nullable."""
    if isinstance(data, dict):
        return {k: _present(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_present(v) for v in data]
    return data


@web.middleware
async def _zendesk(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    app[CALLS].append(f"{request.method} {request.path}")
    load = app[LOAD]
    load.now += 1
    load.peak = max(load.peak, load.now)
    try:
        return await _handle(request, handler)
    finally:
        load.now -= 1


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    app = request.app
    faults = app[FAULTS]
    faulty = faults.take(request)
    if faulty and faults.delay:
        await asyncio.sleep(faults.delay)
    if faulty and faults.reset and request.transport is not None:
        request.transport.abort()
        return web.Response()  # never sent: the connection is gone
    if faulty and faults.garbage:
        return web.Response(text='{"user": {"id": 1', content_type="application/json")
    if faulty and faults.status:
        headers = {"Retry-After": faults.retry_after} if faults.retry_after else {}
        headers.update(faults.headers)
        body = faults.body
        if body is None:
            body = json.dumps({"error": "ServerError", "description": "injected"})
        return web.Response(
            status=faults.status, text=body, content_type=faults.content_type, headers=headers
        )
    if request.path != "/oauth/tokens" and not app[CREDENTIALS].accepts(
        request.headers.get("Authorization")
    ):
        return _answer({"error": "Couldn't authenticate you"}, 401)
    try:
        response = await handler(request)
    except ZendeskError as exc:
        response = _answer(exc.body, exc.status, exc.headers)
    except web.HTTPNotFound:
        response = _answer({"error": "InvalidEndpoint", "description": "Not found"}, 404)
    if faulty and faults.delay_after:
        await asyncio.sleep(faults.delay_after)
    return response


def _int(request: web.Request, name: str) -> int:
    raw = request.match_info[name].removesuffix(".json")
    if not raw.isdigit():
        raise ZendeskError(404, {"error": "RecordNotFound", "description": "Not found"})
    return int(raw)


async def _json(request: web.Request, key: str) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise ZendeskError(400, {"error": "InvalidJSON", "description": "Malformed JSON"}) from None
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise ZendeskError(400, {"error": "InvalidJSON", "description": f"Missing {key}"})
    found: dict[str, Any] = body[key]
    return found


def _page(request: web.Request, items: list[Any]) -> tuple[list[Any], str | None]:
    def number(name: str, default: int) -> int:
        raw = request.query.get(name, "")
        return int(raw) if raw.isdigit() else default

    per_page = min(max(number("per_page", 100), 1), 100)
    page = max(number("page", 1), 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    more = len(items) > page * per_page
    return chunk, str(request.url.update_query(page=page + 1)) if more else None


def _sideloads(request: web.Request, store: Store, users: list[dict[str, Any]]) -> dict[str, Any]:
    include = set(request.query.get("include", "").split(","))
    out: dict[str, Any] = {}
    if "identities" in include:
        out["identities"] = [i for u in users for i in store.user_identities(u["id"])]
    if "organizations" in include:
        ids = {u.get("organization_id") for u in users}
        out["organizations"] = [o for o in store.organizations.values() if o["id"] in ids]
    return out


async def show_user(request: web.Request) -> web.Response:
    store = request.app[STORE]
    user = store.user(_int(request, "id"))
    return _answer({"user": user, **_sideloads(request, store, [user])})


async def search_users(request: web.Request) -> web.Response:
    store = request.app[STORE]
    if "external_id" in request.query:
        wanted = request.query["external_id"].casefold()
        found = [u for u in store.users.values() if str(u.get("external_id")).casefold() == wanted]
    else:
        matches = compile_query(request.query.get("query", ""))
        found = [
            u
            for u in store.users.values()
            if store.searchable(u["id"]) and matches(store.search_doc(u))
        ]
    page, next_page = _page(request, found[:1000])
    body = {"users": page, "next_page": next_page, "previous_page": None, "count": len(found)}
    return _answer({**body, **_sideloads(request, store, page)})


async def create_user(request: web.Request) -> web.Response:
    store = request.app[STORE]
    user = store.create_user(await _json(request, "user"))
    return _answer({"user": user}, 201, {"Location": user["url"]})


async def update_user(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return _answer({"user": store.update_user(_int(request, "id"), await _json(request, "user"))})


async def list_identities(request: web.Request) -> web.Response:
    store = request.app[STORE]
    user = store.user(_int(request, "id"))
    return _answer(
        {
            "identities": store.user_identities(user["id"]),
            "next_page": None,
            "previous_page": None,
            "count": len(store.user_identities(user["id"])),
        }
    )


async def create_identity(request: web.Request) -> web.Response:
    store = request.app[STORE]
    user = store.user(_int(request, "id"))
    data = await _json(request, "identity")
    identity = store.add_identity(user["id"], str(data.get("type")), str(data.get("value")))
    return _answer({"identity": identity}, 201)


async def user_fields(request: web.Request) -> web.Response:
    fields = request.app[STORE].user_fields
    return _answer(
        {"user_fields": fields, "next_page": None, "previous_page": None, "count": len(fields)}
    )


async def ticket_fields(request: web.Request) -> web.Response:
    fields = request.app[STORE].ticket_fields
    return _answer(
        {"ticket_fields": fields, "next_page": None, "previous_page": None, "count": len(fields)}
    )


async def requested_tickets(request: web.Request) -> web.Response:
    store = request.app[STORE]
    user = store.user(_int(request, "id"))
    found = [t for t in store.tickets.values() if t["requester_id"] == user["id"]]
    found.sort(
        key=lambda t: (t["updated_at"], t["id"]),
        reverse=request.query.get("sort_order", "asc") == "desc",
    )
    page, next_page = _page(request, found)
    return _answer(
        {"tickets": page, "next_page": next_page, "previous_page": None, "count": len(found)}
    )


async def create_ticket(request: web.Request) -> web.Response:
    store = request.app[STORE]
    key = request.headers.get("Idempotency-Key")
    body, lookup = store.create_ticket(await _json(request, "ticket"), key)
    headers = {"Location": body["ticket"]["url"]}
    if lookup:
        headers["x-idempotency-lookup"] = lookup
    return _answer(body, 201, headers)


async def show_ticket(request: web.Request) -> web.Response:
    return _answer({"ticket": request.app[STORE].ticket(_int(request, "id"))})


async def update_ticket(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return _answer(store.update_ticket(_int(request, "id"), await _json(request, "ticket")))


async def ticket_comments(request: web.Request) -> web.Response:
    store = request.app[STORE]
    ticket = store.ticket(_int(request, "id"))
    page, next_page = _page(request, store.comments[ticket["id"]])
    return _answer(
        {
            "comments": page,
            "next_page": next_page,
            "previous_page": None,
            "count": len(store.comments[ticket["id"]]),
        }
    )


async def oauth_tokens(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read())
    except ValueError:
        body = dict(await request.post())
    return _answer(request.app[CREDENTIALS].grant(body if isinstance(body, dict) else {}))


def create_sandbox(
    store: Store, *, credentials: Credentials | None = None, faults: Faults | None = None
) -> web.Application:
    app = web.Application(middlewares=[_zendesk])
    app[STORE] = store
    app[FAULTS] = faults or Faults()
    app[CREDENTIALS] = credentials or Credentials()
    app[CALLS] = []
    app[LOAD] = Load()
    r = app.router
    r.add_get("/api/v2/users/search{ext:(\\.json)?}", search_users)
    r.add_get("/api/v2/users/{id}", show_user)
    r.add_post("/api/v2/users{ext:(\\.json)?}", create_user)
    r.add_put("/api/v2/users/{id}", update_user)
    r.add_get("/api/v2/users/{id}/identities{ext:(\\.json)?}", list_identities)
    r.add_post("/api/v2/users/{id}/identities{ext:(\\.json)?}", create_identity)
    r.add_get("/api/v2/users/{id}/tickets/requested{ext:(\\.json)?}", requested_tickets)
    r.add_get("/api/v2/user_fields{ext:(\\.json)?}", user_fields)
    r.add_get("/api/v2/ticket_fields{ext:(\\.json)?}", ticket_fields)
    r.add_post("/api/v2/tickets{ext:(\\.json)?}", create_ticket)
    r.add_get("/api/v2/tickets/{id}", show_ticket)
    r.add_put("/api/v2/tickets/{id}", update_ticket)
    r.add_get("/api/v2/tickets/{id}/comments{ext:(\\.json)?}", ticket_comments)
    r.add_post("/oauth/tokens", oauth_tokens)
    return app
