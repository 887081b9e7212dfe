"""JSON out, fast (orjson): response bodies and log lines are most of a request's encoding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web


def dumps(value: Any, **_: Any) -> str:
    # default=str: a value JSON cannot carry (a date, a Secret) is written as its text.
    return orjson.dumps(value, default=str).decode()


def response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)
