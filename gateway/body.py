"""Request bodies: read within the size limit, parsed with orjson, and checked before anything
else sees them. A body that is too large, not JSON, nested too deep, or holds text that is not
valid Unicode (a lone surrogate, bytes that are not UTF-8) is a 4xx naming the field, before
any upstream call (docs/behaviour.md §1.8)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from gateway.errors import BadRequest, FieldError, PayloadTooLarge, UnsupportedMediaType
from gateway.text import is_text, shown

# Limits on what a caller may send: far above any real Khoros body, far below harm.
MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 16
MAX_TEXT = 100_000
MAX_ITEMS = 1000
_SHOWN_PROBLEMS = 20


async def read_object(request: web.Request, *, json_type: bool = True) -> dict[str, Any] | None:
    """The request's JSON object, or None when the body is empty. ``json_type``: a body must
    come with a JSON content type (Khoros sends one; an admin's curl may not)."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body is over {MAX_BODY_BYTES // 1024} KB.") from None
    if not raw.strip():
        return None
    if json_type and not _is_json(request.content_type):
        raise UnsupportedMediaType()
    body = parse(raw)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def parse(raw: bytes) -> Any:
    """JSON from a caller, checked against the limits; a BadRequest names what is wrong."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _why_not_json(raw) from None
    problems = list(_problems(body, "", 1))
    if problems:
        raise BadRequest("Some values are not accepted.", fields=problems[:_SHOWN_PROBLEMS])
    return body


def _why_not_json(raw: bytes) -> BadRequest:
    """orjson refuses lone surrogates and bytes that are not UTF-8 as it refuses broken JSON.
    The standard parser accepts both (bytes through surrogateescape), so where it succeeds
    the fields holding them can be named."""
    try:
        body = json.loads(raw.decode("utf-8", "surrogateescape"))
    except RecursionError:
        return BadRequest(
            "The request body is nested too deeply.",
            fields=[FieldError("(body)", f"Nested deeper than {MAX_DEPTH} levels.")],
        )
    except ValueError:
        return BadRequest("The request body is not valid JSON.")
    problems = list(_problems(body, "", 1))
    if not problems:  # valid for the standard parser only (NaN, Infinity): not JSON
        return BadRequest("The request body is not valid JSON.")
    return BadRequest("Some values are not accepted.", fields=problems[:_SHOWN_PROBLEMS])


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


_NOT_TEXT = "Is not valid text (a lone surrogate, or bytes that are not UTF-8)."


def _problems(value: Any, name: str, depth: int) -> Iterator[FieldError]:
    """Values too deep, too long, too many, or not text: named by their path in the body."""
    if depth > MAX_DEPTH:
        yield FieldError(name or "(body)", f"Nested deeper than {MAX_DEPTH} levels.")
    elif isinstance(value, str):
        if len(value) > MAX_TEXT:
            yield FieldError(name, f"Longer than {MAX_TEXT} characters.")
        elif not is_text(value):
            yield FieldError(name or "(body)", _NOT_TEXT)
    elif isinstance(value, list):
        if len(value) > MAX_ITEMS:
            yield FieldError(name, f"More than {MAX_ITEMS} items.")
        else:
            for i, item in enumerate(value):
                yield from _problems(item, f"{name}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{name}.{shown(key)}" if name else shown(key)
            if not is_text(key):
                yield FieldError(path, "The name " + _NOT_TEXT[0].lower() + _NOT_TEXT[1:])
            else:
                yield from _problems(item, path, depth + 1)
