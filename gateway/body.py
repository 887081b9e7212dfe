"""Request bodies: read within the size limit, parsed with orjson, and checked before anything
else sees them. A body that is too large, not JSON, nested too deep, or holds text that is not
valid Unicode (a lone surrogate, bytes that are not UTF-8) is a 4xx naming the field, before
any upstream call (docs/behaviour.md §1.8); so is one its operation's JSON schema refuses
(`Body`, validated with jsonschema): a 400 naming each path, as `interactions[0].serviceId`.

A body may come compressed (`Content-Encoding: gzip` or `deflate`): it is decompressed here, up
to the size limit and no further, so a small bomb costs no more than the limit. aiohttp's own
decompression is off (`app.create_app`): it inflated up to 32 MB before refusing, raised on a
body that does not decompress (a 500), and answered a coding it lacks (`br`) in plain text."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import jsonschema
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
# The content codings a body may come in (RFC 9110 §8.4.1), as zlib's window bits: gzip's
# header and trailer, or zlib's (deflate; raw deflate, which some clients send, is tried too).
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
Schema = Mapping[str, Any]


@dataclass(frozen=True)
class Body:
    """The JSON body an operation takes."""

    schema: Schema  # JSON Schema (2020-12) of the body
    required: bool = True  # an empty body is a 400 (otherwise it reads as `{}`)
    json_only: bool = True  # it must come as JSON (an operator's `curl -d` sends a form type)
    # Names callers send for a key, read as the key (the key itself wins when both come).
    aliases: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def validator(self) -> jsonschema.protocols.Validator:
        return jsonschema.Draft202012Validator(self.schema)


async def read(request: web.Request, body: Body) -> dict[str, Any]:
    """The request's body as ``body`` accepts it."""
    found = await read_object(request, json_type=body.json_only)
    if found is None and body.required:
        raise BadRequest("The request body must be a JSON object.")
    return accepted(body, found or {})


def accepted(body: Body, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` with its aliases renamed, when its schema accepts it; else a 400 naming each
    path the schema refuses."""
    out = dict(given)
    for alias, key in body.aliases.items():
        if alias in out:
            out.setdefault(key, out[alias])
            del out[alias]
    problems: dict[str, str] = {}
    for error in sorted(body.validator.iter_errors(out), key=lambda e: e.json_path):
        for name, problem in _refused(error):
            problems.setdefault(name, problem)
    if problems:
        fields = [FieldError(n, p) for n, p in list(problems.items())[:_SHOWN_PROBLEMS]]
        raise BadRequest("Some fields are not valid.", fields=fields)
    return out


_TYPES = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


def _refused(error: jsonschema.ValidationError) -> Iterator[tuple[str, str]]:
    """The fields one schema error names, with what is wrong, in words for the agent."""
    path = _name(error.absolute_path)
    kind = error.validator
    want: Any = error.validator_value
    if kind == "required":
        for key in want:
            if isinstance(error.instance, dict) and key not in error.instance:
                yield _name([*error.absolute_path, key]), "Is required."
    elif kind == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        for key in error.instance:
            if key not in known:
                yield _name([*error.absolute_path, key]), "Unknown field."
    elif kind == "type":
        wanted = [want] if isinstance(want, str) else list(want)
        yield path, "Must be " + " or ".join(_TYPES.get(t, t) for t in wanted) + "."
    elif kind == "pattern" and want == r"\S":
        yield path, "Must not be blank."
    elif kind == "enum":
        yield path, "Must be one of: " + ", ".join(str(v) for v in want) + "."
    elif kind == "minProperties":
        yield path, "Give at least one field." if want == 1 else f"Give at least {want} fields."
    else:
        yield path, "Is not valid."


def _name(path: Any) -> str:
    """A path in the body as callers write it: `interactions[0].serviceId`."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{shown(part)}" if out else shown(part))
    return out or "(body)"


async def read_object(request: web.Request, *, json_type: bool = True) -> dict[str, Any] | None:
    """The request's JSON object, or None when the body is empty. ``json_type``: a body must
    come with a JSON content type (Khoros sends one; an admin's curl may not)."""
    coding = content_coding(request)  # before reading: a coding we cannot read is not read
    if (request.content_length or 0) > MAX_BODY_BYTES:  # said before sent: not waited for
        raise PayloadTooLarge(f"The request body is over {MAX_BODY_BYTES // 1024} KB.")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"The request body is over {MAX_BODY_BYTES // 1024} KB.") from None
    if coding is not None:
        raw = decompressed(raw, coding)
    if not raw.strip():
        return None
    if json_type and not _is_json(request.content_type):
        raise UnsupportedMediaType()
    body = parse(raw)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    return body


def content_coding(request: web.Request) -> str | None:
    """The coding the request's body comes in (None: as it is); 415 for one not read here, and
    for more than one (each would multiply the work a small body makes)."""
    given = ",".join(request.headers.getall("Content-Encoding", ())).lower().split(",")
    codings = [c.strip() for c in given if c.strip() not in ("", "identity")]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _CODINGS:
        raise UnsupportedMediaType(
            "The request body must come as it is, or compressed with gzip or deflate "
            "(Content-Encoding), once."
        )
    return codings[0]


def decompressed(raw: bytes, coding: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """``raw`` decompressed, never past ``limit`` bytes: over it is a 413, a body that does not
    decompress (not that coding, cut short, followed by garbage) a 400. gzip members may follow
    each other (RFC 1952 §2.2); deflate is one stream."""
    wbits = _CODINGS[coding]
    parts: list[bytes] = []
    size = 0
    while raw:
        inflate = zlib.decompressobj(wbits)
        try:
            part = inflate.decompress(raw, limit + 1 - size)  # one byte over says "too large"
        except zlib.error:
            if coding == "deflate" and wbits > 0:  # no zlib header: try it as raw deflate
                wbits = -zlib.MAX_WBITS
                continue
            raise _not(coding) from None
        size += len(part)
        if size > limit:
            raise PayloadTooLarge(f"The request body is over {limit // 1024} KB once decompressed.")
        if not inflate.eof:
            raise _not(coding)
        parts.append(part)
        raw = inflate.unused_data
        if raw and coding == "deflate":
            raise _not(coding)
    return b"".join(parts)


def _not(coding: str) -> BadRequest:
    return BadRequest(f"The request body does not decompress as {coding} (Content-Encoding).")


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
