"""The sandbox's endpoints: Zendesk's paths, bodies and pagination (docs/sandbox.md)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.sandbox import paging
from gateway.sandbox.levers import CREDENTIALS, STORE
from gateway.sandbox.rules import ZendeskError
from gateway.sandbox.search import compile_query, ticket_candidates, types
from gateway.sandbox.store import Store


def answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(_present(data), status=status, headers=headers)


def _present(data: Any) -> Any:
    """Leave out null values: the official OpenAPI types most of them as non-nullable."""
    if isinstance(data, dict):
        return {k: _present(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_present(v) for v in data]
    return data


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


def _by_id(item: dict[str, Any]) -> tuple[Any, ...]:
    return (item["id"],)


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
    return answer({"user": user, **_sideloads(request, store, [user])})


async def search_users(request: web.Request) -> web.Response:
    """Offset pages only, and at most 1,000 results (422 past them); `count` is the total."""
    store = request.app[STORE]
    if paging.is_cursor(request):
        raise ZendeskError(
            400, {"error": "InvalidPaginationParameter", "description": "page must be an integer"}
        )
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
    page, keys = paging.offset(request, found, limit=paging.SEARCH_LIMIT)
    return answer({"users": page, **keys, **_sideloads(request, store, page)})


_SEARCH_SORTS = ("updated_at", "created_at", "priority", "status", "ticket_type")


async def search(request: web.Request) -> web.Response:
    """Zendesk's search API for users and tickets (`type:user`, `type:ticket`; no type: both),
    each result with its `result_type`. As users/search: offset pages only, at most 1,000
    results (422 past them), `count` the true total, and a write out of the index for
    `index_lag` seconds. Sorted by `sort_by` (`sort_order` defaults to desc, as documented);
    without it by id, where Zendesk sorts by relevance (no order a client can rely on)."""
    store = request.app[STORE]
    if paging.is_cursor(request):
        raise ZendeskError(
            400, {"error": "InvalidPaginationParameter", "description": "page must be an integer"}
        )
    query = request.query.get("query", "")
    wanted = types(query) or {"user", "ticket"}
    results: list[dict[str, Any]] = []
    if "ticket" in wanted:
        matches = compile_query(query, ticket_candidates)
        results += [
            {**t, "result_type": "ticket"}
            for t in store.tickets.values()
            if store.ticket_searchable(t["id"]) and matches(store.ticket_doc(t))
        ]
    if "user" in wanted:
        matches = compile_query(query)
        results += [
            {**u, "result_type": "user"}
            for u in store.users.values()
            if store.searchable(u["id"]) and matches(store.search_doc(u))
        ]
    field = request.query.get("sort_by", "")
    field = {"ticket_type": "type"}.get(field, field) if field in _SEARCH_SORTS else ""
    descending = bool(field) and request.query.get("sort_order", "desc") == "desc"
    results.sort(key=lambda r: (str(r.get(field) or "") if field else "", r["id"]))
    if descending:
        results.reverse()
    page, keys = paging.offset(request, results, limit=paging.SEARCH_LIMIT)
    return answer({"results": page, "facets": None, **keys})


async def create_user(request: web.Request) -> web.Response:
    store = request.app[STORE]
    user = store.create_user(await _json(request, "user"))
    return answer({"user": user}, 201, {"Location": user["url"]})


async def update_user(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return answer({"user": store.update_user(_int(request, "id"), await _json(request, "user"))})


async def list_identities(request: web.Request) -> web.Response:
    store = request.app[STORE]
    user = store.user(_int(request, "id"))
    return answer(paging.page(request, "identities", store.user_identities(user["id"]), _by_id))


async def create_identity(request: web.Request) -> web.Response:
    store = request.app[STORE]
    user = store.user(_int(request, "id"))
    data = await _json(request, "identity")
    identity = store.add_identity(user["id"], str(data.get("type")), str(data.get("value")))
    return answer({"identity": identity}, 201)


async def user_fields(request: web.Request) -> web.Response:
    fields = request.app[STORE].user_fields
    return answer(
        {"user_fields": fields, "next_page": None, "previous_page": None, "count": len(fields)}
    )


async def ticket_fields(request: web.Request) -> web.Response:
    fields = request.app[STORE].ticket_fields
    return answer(
        {"ticket_fields": fields, "next_page": None, "previous_page": None, "count": len(fields)}
    )


_TICKET_SORTS = ("id", "updated_at", "status")


async def requested_tickets(request: web.Request) -> web.Response:
    """Offset pages sort by `sort_by`/`sort_order`; cursor pages only by `sort` (`-updated_at`,
    `id`, `status`), and silently ignore `sort_by`/`sort_order`, as Zendesk does."""
    store = request.app[STORE]
    user = store.user(_int(request, "id"))
    found = [t for t in store.tickets.values() if t["requester_id"] == user["id"]]
    if paging.is_cursor(request):
        sort = request.query.get("sort", "id")
        field, descending = sort.removeprefix("-"), sort.startswith("-")
        if field not in _TICKET_SORTS:
            raise ZendeskError(
                400, {"error": "InvalidPaginationParameter", "description": f"sort: {sort}"}
            )
    else:
        field = request.query.get("sort_by", "id")
        field = field if field in _TICKET_SORTS else "id"
        descending = request.query.get("sort_order", "asc") == "desc"

    def key(t: dict[str, Any]) -> tuple[Any, ...]:
        return (t[field], t["id"])

    found.sort(key=key, reverse=descending)
    return answer(paging.page(request, "tickets", found, key, descending=descending))


async def create_ticket(request: web.Request) -> web.Response:
    store = request.app[STORE]
    key = request.headers.get("Idempotency-Key")
    body, lookup = store.create_ticket(await _json(request, "ticket"), key)
    headers = {"Location": body["ticket"]["url"]}
    if lookup:
        headers["x-idempotency-lookup"] = lookup
    return answer(body, 201, headers)


async def show_ticket(request: web.Request) -> web.Response:
    return answer({"ticket": request.app[STORE].ticket(_int(request, "id"))})


async def update_ticket(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return answer(store.update_ticket(_int(request, "id"), await _json(request, "ticket")))


async def ticket_comments(request: web.Request) -> web.Response:
    store = request.app[STORE]
    ticket = store.ticket(_int(request, "id"))
    comments = list(store.comments[ticket["id"]])
    descending = not paging.is_cursor(request) and request.query.get("sort_order") == "desc"
    comments.sort(key=_by_id, reverse=descending)
    return answer(paging.page(request, "comments", comments, _by_id, descending=descending))


async def ticket_audits(request: web.Request) -> web.Response:
    """Each write's audit, oldest first: its events (the Comment among them) and metadata."""
    store = request.app[STORE]
    ticket = store.ticket(_int(request, "id"))
    return answer(paging.page(request, "audits", store.audits[ticket["id"]], _by_id))


async def oauth_tokens(request: web.Request) -> web.Response:
    try:
        body = json.loads(await request.read())
    except ValueError:
        body = dict(await request.post())
    return answer(request.app[CREDENTIALS].grant(body if isinstance(body, dict) else {}))


def routes(r: web.UrlDispatcher) -> None:
    json_ext = "{ext:(\\.json)?}"
    r.add_get(f"/api/v2/users/search{json_ext}", search_users)
    r.add_get(f"/api/v2/search{json_ext}", search)
    r.add_get("/api/v2/users/{id}", show_user)
    r.add_post(f"/api/v2/users{json_ext}", create_user)
    r.add_put("/api/v2/users/{id}", update_user)
    r.add_get(f"/api/v2/users/{{id}}/identities{json_ext}", list_identities)
    r.add_post(f"/api/v2/users/{{id}}/identities{json_ext}", create_identity)
    r.add_get(f"/api/v2/users/{{id}}/tickets/requested{json_ext}", requested_tickets)
    r.add_get(f"/api/v2/user_fields{json_ext}", user_fields)
    r.add_get(f"/api/v2/ticket_fields{json_ext}", ticket_fields)
    r.add_post(f"/api/v2/tickets{json_ext}", create_ticket)
    r.add_get("/api/v2/tickets/{id}", show_ticket)
    r.add_put("/api/v2/tickets/{id}", update_ticket)
    r.add_get(f"/api/v2/tickets/{{id}}/comments{json_ext}", ticket_comments)
    r.add_get(f"/api/v2/tickets/{{id}}/audits{json_ext}", ticket_audits)
    r.add_post("/oauth/tokens", oauth_tokens)
