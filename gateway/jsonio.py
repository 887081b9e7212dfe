"""JSON out, fast (orjson): response bodies and log lines are most of a request's encoding."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from gateway.text import repaired


def dumps(value: Any, **_: Any) -> str:
    # default=str: a value JSON cannot carry (a date, a Secret) is written as its text.
    try:
        return orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        return _refused_by_orjson(value)


def encoded(value: Any) -> bytes:
    """`dumps`, as UTF-8: orjson's own bytes, not decoded to be encoded again."""
    try:
        return orjson.dumps(value, default=str)
    except orjson.JSONEncodeError:
        return _refused_by_orjson(value).encode()


def _refused_by_orjson(value: Any) -> str:
    # What orjson refuses and a caller or the CRM can still bring in: a string that is not
    # text (repaired to U+FFFD), an integer over 64 bits, nesting over 255 levels.
    return json.dumps(repaired(value), default=str, ensure_ascii=False, separators=(",", ":"))


def response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """What `web.json_response` answers (``application/json; charset=utf-8``), from bytes."""
    return web.Response(
        body=encoded(data),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )
