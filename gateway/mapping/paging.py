"""Reading every page of a step's answer, as the mapping's `paginate` declares: the next
page's URL (`next_url`), a cursor for a query parameter (`cursor` + `cursor_param`), or
numbered pages (`page_param`), while `more` holds, up to `max_pages`. Knows no CRM."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from gateway import logs
from gateway.errors import BadGateway
from gateway.mapping.model import Paging, Step


@dataclass(frozen=True)
class Next:
    """Where the next page is: another path and all of its query (a next-page URL), or the
    step's own request with some query parameters set."""

    path: str | None = None
    query: dict[str, str] = field(default_factory=dict)


def within(url: str, base_url: str) -> Next:
    """A next-page URL as a path and query under the upstream's base URL. A URL elsewhere is
    refused: the request would carry our credentials to another server."""
    base = URL(base_url)
    target = URL(url)
    if not target.is_absolute():
        target = base.join(target)
    prefix = base.raw_path.rstrip("/")
    if target.origin() != base.origin() or not target.raw_path.startswith(prefix + "/"):
        raise BadGateway(detail="a next-page URL points outside the upstream")
    return Next(target.raw_path[len(prefix) :], {k: v for k, v in target.query.items()})


def next_page(p: Paging, answer: Any, read: int, base_url: str) -> Next | None:
    """The page after ``answer`` (the ``read``-th page), or None when it was the last."""
    if p.more is not None and not p.more(answer):
        return None
    if p.next_url is not None:
        url = p.next_url(answer)
        return within(url, base_url) if isinstance(url, str) and url else None
    if p.cursor is not None and p.cursor_param is not None:
        value = p.cursor(answer)
        return Next(query={p.cursor_param: str(value)}) if value not in (None, "") else None
    if p.page_param is not None:
        return Next(query={p.page_param: str(read + 1)})
    return None


async def follow(
    p: Paging,
    get: Callable[[Next | None], Awaitable[Any]],
    base_url: str,
    enough: Callable[[list[Any]], bool] | None = None,
) -> tuple[list[Any], bool]:
    """Every page's answer, in order, and whether `max_pages` stopped the reading early.
    ``enough``: the caller has what it needs from the pages read so far."""
    pages = [await get(None)]
    while not (enough is not None and enough(pages)):
        after = next_page(p, pages[-1], len(pages), base_url)
        if after is None:
            break
        if len(pages) >= p.max_pages:
            return pages, True
        pages.append(await get(after))
    return pages, False


async def every_page(
    step: Step,
    get: Callable[[Next | None], Awaitable[Any]],
    base_url: str,
    enough: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:
    """A paginated step's answer: the list of its pages. At the cap a `pagination_capped` line
    is logged; a step that reads the interactions on a record is refused there instead, since
    an interaction on a page not read could be added again."""
    assert step.paginate is not None
    pages, capped = await follow(step.paginate, get, base_url, enough)
    if capped:
        reads = step.recorded_interactions or step.existing_interactions
        logs.get().warning(
            "pagination_capped",
            step=step.name,
            path=step.request.path.source,
            pages=len(pages),
            outcome="refused" if reads else "partial",
        )
        if reads:
            raise BadGateway(
                "The record has more history than the gateway reads; nothing was added.",
                detail=f"{step.name}: more than {len(pages)} pages",
            )
    return pages
