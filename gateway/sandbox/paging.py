"""Zendesk's two kinds of pagination, as its documentation describes them (docs/sandbox.md):

- offset: ``page`` and ``per_page`` (at most 100), answered with ``next_page``,
  ``previous_page`` and ``count``; past the first 10,000 records, 400 InvalidPaginationDepth;
- cursor: ``page[size]`` (1..100) and ``page[after]`` / ``page[before]``, answered with
  ``meta.has_more``, ``meta.after_cursor``, ``meta.before_cursor`` and ``links.next`` /
  ``links.prev``. ``links.next`` is given on the last page too: only ``has_more`` says "done".

A cursor names the sort key of the record it stands after, so records written between two
pages neither shift nor repeat the records still to come (as a real cursor does); offsets do.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.sandbox.rules import ZendeskError

PER_PAGE = 100
OFFSET_DEPTH = 10_000
SEARCH_LIMIT = 1_000  # users/search stops here: 422 past it

SortKey = Callable[[dict[str, Any]], tuple[Any, ...]]


def is_cursor(request: web.Request) -> bool:
    return any(k.startswith("page[") for k in request.query)


def _number(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    return int(raw) if raw.isdigit() else default


def offset(
    request: web.Request, items: list[Any], *, limit: int | None = None
) -> tuple[list[Any], dict[str, Any]]:
    """One offset page and its paging keys. ``limit``: results past it cannot be reached (422),
    as in Zendesk's search; ``count`` still tells the true total."""
    per_page = min(max(_number(request, "per_page", PER_PAGE), 1), PER_PAGE)
    page = max(_number(request, "page", 1), 1)
    end = page * per_page
    if limit is not None and end > limit:
        raise ZendeskError(
            422,
            {
                "error": "invalid",
                "description": "Requested response size was greater than Search Response Limits",
            },
        )
    if end > OFFSET_DEPTH:
        raise ZendeskError(
            400,
            {
                "errors": [
                    {
                        "code": "InvalidPaginationDepth",
                        "title": "Pagination depth too deep",
                        "detail": "Use cursor pagination to read past 10,000 records",
                    }
                ]
            },
        )
    chunk = items[end - per_page : end]
    # Harsher where Zendesk is silent: next_page is given whenever more records exist, also
    # when the next page is past the search limit and answers 422.
    keys = {
        "next_page": str(request.url.update_query(page=page + 1)) if len(items) > end else None,
        "previous_page": str(request.url.update_query(page=page - 1)) if page > 1 else None,
        "count": len(items),
    }
    return chunk, keys


def _encode(key: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[Any, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except ValueError:
        value = None
    if not isinstance(value, list):
        raise ZendeskError(
            400, {"error": "InvalidPaginationParameter", "description": "invalid cursor"}
        )
    return tuple(value)


def cursor(
    request: web.Request, items: list[Any], sort_key: SortKey, *, descending: bool = False
) -> tuple[list[Any], dict[str, Any]]:
    """One cursor page of ``items`` (already in the endpoint's order) and its paging keys."""
    raw = request.query.get("page[size]", str(PER_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= PER_PAGE:
        raise ZendeskError(
            400,
            {
                "error": "InvalidPaginationParameter",
                "description": f"page[size] must be an integer from 1 to {PER_PAGE}",
            },
        )
    size = int(raw)

    def after(item: Any, key: tuple[Any, ...]) -> bool:
        mine = sort_key(item)
        return mine < key if descending else mine > key

    if "page[after]" in request.query:
        key = _decode(request.query["page[after]"])
        rest = [i for i in items if after(i, key)]
        chunk, more = rest[:size], len(rest) > size
    elif "page[before]" in request.query:
        key = _decode(request.query["page[before]"])
        rest = [i for i in items if not after(i, key) and sort_key(i) != key]
        chunk, more = rest[-size:], len(rest) > size
    else:
        chunk, more = items[:size], len(items) > size
    first = _encode(sort_key(chunk[0])) if chunk else None
    last = _encode(sort_key(chunk[-1])) if chunk else None
    base = request.url.without_query_params("page[after]", "page[before]")
    keys = {
        "meta": {"has_more": more, "after_cursor": last, "before_cursor": first},
        "links": {
            "next": str(base.update_query({"page[after]": last})) if last else None,
            "prev": str(base.update_query({"page[before]": first})) if first else None,
        },
    }
    return chunk, keys


def page(
    request: web.Request,
    name: str,
    items: list[Any],
    sort_key: SortKey,
    *,
    descending: bool = False,
) -> dict[str, Any]:
    """A list endpoint's answer, offset or cursor as the request asks."""
    if is_cursor(request):
        chunk, keys = cursor(request, items, sort_key, descending=descending)
    else:
        chunk, keys = offset(request, items)
    return {name: chunk, **keys}
