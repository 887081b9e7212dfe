"""Reading every page, as a mapping's `paginate` declares it: next-page URLs (only under the
upstream's base URL), cursors, numbered pages, `more`, the page cap, and stopping early."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import BadGateway
from gateway.mapping.expr import Path
from gateway.mapping.model import Paging
from gateway.mapping.paging import Next, follow, next_page, within

BASE = "https://acme.zendesk.example/base"


def test_next_urls_must_stay_under_the_base_url() -> None:
    assert within(f"{BASE}/api/v2/x?page=2&per_page=100", BASE) == Next(
        "/api/v2/x", {"page": "2", "per_page": "100"}
    )
    assert within("/base/api/v2/x?page%5Bafter%5D=a%3D", BASE).query == {"page[after]": "a="}
    for elsewhere in (
        "https://evil.example/base/api/v2/x",
        "http://acme.zendesk.example/base/api/v2/x",  # another scheme
        "https://acme.zendesk.example:444/base/api/v2/x",
        "https://acme.zendesk.example/other/api/v2/x",
        "https://acme.zendesk.example/baseball/x",
    ):
        with pytest.raises(BadGateway):
            within(elsewhere, BASE)


def test_each_kind_of_next_page() -> None:
    by_url = Paging(next_url=Path("links.next"), more=Path("meta.has_more"))
    page = {"links": {"next": f"{BASE}/a?page[after]=c"}, "meta": {"has_more": True}}
    assert next_page(by_url, page, 1, BASE) == Next("/a", {"page[after]": "c"})
    # Zendesk gives links.next on the last page too: only has_more says "done".
    assert next_page(by_url, {**page, "meta": {"has_more": False}}, 1, BASE) is None
    by_cursor = Paging(cursor=Path("meta.after_cursor"), cursor_param="page[after]")
    assert next_page(by_cursor, {"meta": {"after_cursor": "c2"}}, 1, BASE) == Next(
        query={"page[after]": "c2"}
    )
    assert next_page(by_cursor, {"meta": {}}, 1, BASE) is None
    numbered = Paging(page_param="page", more=Path("next_page"))
    assert next_page(numbered, {"next_page": "x"}, 3, BASE) == Next(query={"page": "4"})
    assert next_page(numbered, {"next_page": None}, 3, BASE) is None
    assert next_page(Paging(next_url=Path("next_page")), {"next_page": None}, 1, BASE) is None


async def test_follow_reads_until_done_capped_or_enough() -> None:
    numbered = Paging(page_param="page", more=Path("more"), max_pages=3)
    asked: list[Next | None] = []

    def pages(total: int) -> Any:
        async def get(at: Next | None) -> Any:
            asked.append(at)
            n = 1 if at is None else int(at.query["page"])
            return {"n": n, "more": n < total}

        return get

    read, capped = await follow(numbered, pages(2), BASE)
    assert [p["n"] for p in read] == [1, 2] and not capped
    read, capped = await follow(numbered, pages(5), BASE)
    assert [p["n"] for p in read] == [1, 2, 3] and capped
    read, capped = await follow(numbered, pages(5), BASE, lambda got: got[-1]["n"] == 2)
    assert [p["n"] for p in read] == [1, 2] and not capped
