"""Request bodies (docs/behaviour.md §1.8): text that is not text, nesting and broken bytes are a
400 naming the field, through the real HTTP stack, before any upstream call. Property tests
show that no bytes make `parse` fail any other way."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import tracemalloc
import zlib
from typing import Any

import pytest
from conftest import API, AUTH, interaction, raw_http
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.body import MAX_BODY_BYTES, MAX_DEPTH, parse
from gateway.errors import BadRequest
from gateway.sandbox.server import CALLS
from gateway.text import shown

LONE = "x\ud800y"  # a lone surrogate, as `"x\ud800y"` in JSON


def lone_surrogate_json(body: Any) -> bytes:
    """JSON as a careless client writes it: the surrogate as a \\ud800 escape."""
    return json.dumps(body).encode()


def bodies() -> list[tuple[str, str, Any, str]]:
    """(method, path, body, the field named): a lone surrogate in strings of every kind."""
    case = {"customerId": "1001", "title": "Screen cracked", "interactions": [interaction("9")]}
    broken_author = interaction("9")
    broken_author["author"]["name"] = LONE
    return [
        ("POST", "/customer", {"name": LONE}, "name"),
        ("POST", "/customer", {"name": "Ada", "notes": LONE}, "notes"),
        ("PATCH", "/customer/1001", {"notes": LONE}, "notes"),
        ("POST", "/customers", {"email": LONE}, "email"),
        ("POST", "/customer/bestmatch", {"displayName": LONE}, "displayName"),
        (
            "POST",
            "/customer/bestmatch",
            {"phoneNumbers": ["+41791234567", LONE]},
            "phoneNumbers[1]",
        ),
        ("POST", "/case", {**case, "title": LONE}, "title"),
        (
            "POST",
            "/case",
            {**case, "interactions": [interaction("9", LONE)]},
            "interactions[0].body",
        ),
        ("POST", "/case", {**case, "interactions": [broken_author]}, "interactions[0].author.name"),
        ("PATCH", "/case/5001", {"interactions": [interaction("9", LONE)]}, "interactions[0].body"),
        ("PATCH", "/case/5001", {"status": "open", "subject": {"deep": [LONE]}}, "subject.deep[0]"),
        ("POST", "/customer", {"name": "Ada", LONE: "x"}, "x\ufffdy"),
    ]


@pytest.mark.parametrize(("method", "path", "body", "field"), bodies())
async def test_a_lone_surrogate_anywhere_is_400_naming_the_field_and_nothing_is_sent(
    client: Any, sandbox: Any, method: str, path: str, body: Any, field: str
) -> None:
    before = list(sandbox.app[CALLS])
    resp = await client.request(
        method,
        API + path,
        data=lone_surrogate_json(body),
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert resp.status == 400, await resp.text()
    answer = await resp.json()
    assert answer["error"] == "BadRequest" and "tracking id" in answer["message"]
    assert field in [f["name"] for f in answer["fields"]]
    assert sandbox.app[CALLS] == before  # not even a read: refused before the mapping runs


async def test_bytes_that_are_not_utf8_are_400_naming_the_field(client: Any, sandbox: Any) -> None:
    before = list(sandbox.app[CALLS])
    for raw, field in [
        (b'{"name": "Ad\xe9 Lovelace"}', "name"),  # Latin-1
        (b'{"name": "Ada", "notes": "\xed\xa0\x80"}', "notes"),  # a surrogate, UTF-8 encoded
        (b'{"name": "Ada", "n\xffo": "x"}', "n\ufffdo"),
    ]:
        resp = await client.post(
            f"{API}/customer", data=raw, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert resp.status == 400
        assert field in [f["name"] for f in (await resp.json())["fields"]]
    assert sandbox.app[CALLS] == before


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 2000, 200_000])
async def test_deep_nesting_is_400_with_the_error_body(
    client: Any, sandbox: Any, depth: int
) -> None:
    before = list(sandbox.app[CALLS])
    for raw in (b"[" * depth + b"]" * depth, b'{"name": ' + b"[" * depth + b"]" * depth + b"}"):
        for path in ("/customer", "/case", "/customer/bestmatch"):
            resp = await client.post(
                API + path, data=raw, headers={**AUTH, "Content-Type": "application/json"}
            )
            assert resp.status == 400, (path, depth)
            assert (await resp.json())["error"] == "BadRequest"
    assert sandbox.app[CALLS] == before


async def test_unclosed_nesting_and_garbage_are_400(client: Any) -> None:
    for raw in (b"[" * 2000, b'{"name": "Ada"', b"\xff\xfe{}", b'{"a": NaN}', b"{'a': 1}"):
        resp = await client.post(
            f"{API}/customer", data=raw, headers={**AUTH, "Content-Type": "application/json"}
        )
        assert resp.status == 400, raw[:20]
        assert (await resp.json())["error"] == "BadRequest"


async def test_a_valid_surrogate_pair_is_text(client: Any) -> None:
    resp = await client.post(
        f"{API}/customer",
        data=b'{"name": "Ada \\ud83d\\ude00 Lovelace"}',
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert resp.status == 201
    assert (await resp.json())["name"] == "Ada \U0001f600 Lovelace"


async def test_raw_request_with_a_lone_surrogate_in_a_body(client: Any, sandbox: Any) -> None:
    """The same refusal when the bytes come straight from a socket, chunked or not."""
    body = b'{"title": "x\\udc00", "customerId": "1001"}'
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    for framing, payload in [(b"Content-Length: %d" % len(body), body),
                             (b"Transfer-Encoding: chunked", chunked)]:  # fmt: skip
        status, headers, answer = await raw_http(
            client.port,
            b"POST /api/v1/case HTTP/1.1\r\nHost: x\r\nAuthorization: test-key-1\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n" + framing + b"\r\n\r\n"
            b"" + payload,
        )
        assert status == 400 and headers["content-type"].startswith("application/json")
        assert [f["name"] for f in json.loads(answer)["fields"]] == ["title"]


# -- properties of `parse`: any bytes give a value or a BadRequest, never anything else ----------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@PROPERTIES
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_a_bad_request(raw: bytes) -> None:
    try:
        parse(raw)
    except BadRequest as exc:
        json.dumps(exc.body("t"), ensure_ascii=False).encode()  # its body is text


@PROPERTIES
@given(JSON, st.data())
def test_a_lone_surrogate_is_named_wherever_it_is(value: Any, data: st.DataObject) -> None:
    """Put a lone surrogate into one string of any body: the 400 names exactly where."""
    body = {"field": value, "anchor": "a"}
    paths = [(p, c, k) for p, c, k, depth in _strings(body, "", 1) if depth < MAX_DEPTH]
    path, holder, key = data.draw(st.sampled_from(paths))
    holder[key] += chr(data.draw(st.integers(0xD800, 0xDFFF)))
    with pytest.raises(BadRequest) as refused:
        parse(json.dumps(body).encode())
    assert path in [f.name for f in refused.value.fields]
    json.dumps(refused.value.body("t"), ensure_ascii=False).encode()


def _strings(value: Any, name: str, depth: int) -> Any:
    """(path as the 400 names it, container, key, depth) of every string value."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(value, dict):  # names are shown with what is not text replaced
            path = f"{name}.{shown(key)}" if name else shown(key)
        else:
            path = f"{name}[{key}]"
        if isinstance(item, str):
            yield path, value, key, depth
        elif isinstance(item, dict | list):
            yield from _strings(item, path, depth + 1)


# -- Content-Encoding: gzip and deflate are read, within the limit; anything else is a 415 --------


def _gzip_bomb(size: int) -> bytes:
    """Zeros that decompress to ``size`` bytes, compressed a MB at a time (never held whole)."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"0" * (1024 * 1024)
    parts = [squeeze.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, squeeze.flush()])


def _deflate(data: bytes, wbits: int) -> bytes:
    squeeze = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return squeeze.compress(data) + squeeze.flush()


SEARCH = json.dumps({"email": "jane@example.com"}).encode()


@pytest.mark.parametrize(
    ("coding", "raw"),
    [
        ("gzip", gzip.compress(SEARCH)),
        ("x-gzip", gzip.compress(SEARCH)),
        ("GZip", gzip.compress(SEARCH)),
        ("deflate", _deflate(SEARCH, zlib.MAX_WBITS)),  # zlib-wrapped, as RFC 9110 says
        ("deflate", _deflate(SEARCH, -zlib.MAX_WBITS)),  # raw, as some clients send it
        ("identity", SEARCH),
        ("gzip", gzip.compress(SEARCH[:10]) + gzip.compress(SEARCH[10:])),  # two members
    ],
    ids=["gzip", "x-gzip", "GZip", "zlib", "raw-deflate", "identity", "two-members"],
)
async def test_a_compressed_body_is_read(client: Any, coding: str, raw: bytes) -> None:
    resp = await client.post(
        f"{API}/customers",
        data=raw,
        headers={**AUTH, "Content-Type": "application/json", "Content-Encoding": coding},
    )
    assert resp.status == 200, await resp.text()
    assert [c["email"] for c in await resp.json()] == ["jane@example.com"]


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, gzip", "chunked", "b\u00e4d"])
async def test_another_content_encoding_is_415_before_the_body_is_read(
    client: Any, sandbox: Any, coding: str
) -> None:
    before = list(sandbox.app[CALLS])
    resp = await client.post(
        f"{API}/customers",
        data=gzip.compress(SEARCH),
        headers={**AUTH, "Content-Type": "application/json", "Content-Encoding": coding},
    )
    assert resp.status == 415, await resp.text()
    answer = await resp.json()
    assert answer["error"] == "UnsupportedMediaType" and "gzip" in answer["message"]
    assert sandbox.app[CALLS] == before


@pytest.mark.parametrize(
    ("coding", "raw"),
    [
        ("gzip", b"this is not gzip at all"),
        ("gzip", gzip.compress(SEARCH)[:-12]),  # truncated: no end
        ("gzip", gzip.compress(SEARCH) + b"garbage after the member"),
        ("deflate", b"\x78\x9c not deflate"),
    ],
    ids=["not-gzip", "truncated", "trailing-garbage", "not-deflate"],
)
async def test_a_body_that_does_not_decompress_is_400(
    client: Any, sandbox: Any, coding: str, raw: bytes
) -> None:
    before = list(sandbox.app[CALLS])
    resp = await client.post(
        f"{API}/customers",
        data=raw,
        headers={**AUTH, "Content-Type": "application/json", "Content-Encoding": coding},
    )
    assert resp.status == 400, await resp.text()
    answer = await resp.json()
    assert answer["error"] == "BadRequest" and coding in answer["message"]
    assert sandbox.app[CALLS] == before


async def test_a_gzip_bomb_is_413_without_being_decompressed(client: Any, sandbox: Any) -> None:
    """40 MB of zeros in 40 KB: decompressed only up to the 1 MB limit (aiohttp's own limit is
    32 MB, past which it raised)."""
    bomb = _gzip_bomb(40 * 1024 * 1024)
    assert len(bomb) < 100_000
    before = list(sandbox.app[CALLS])
    tracemalloc.start()
    try:
        resp = await client.post(
            f"{API}/customers",
            data=bomb,
            headers={**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        answer = await resp.json()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert resp.status == 413 and answer["error"] == "PayloadTooLarge", answer
    assert "decompressed" in answer["message"]
    assert peak < 8 * 1024 * 1024, peak  # the limit and some, never the bomb
    assert sandbox.app[CALLS] == before


async def test_a_body_just_over_the_limit_once_decompressed_is_413(client: Any) -> None:
    padded = b'{"email": "jane@example.com", "x": "' + b" " * MAX_BODY_BYTES + b'"}'
    resp = await client.post(
        f"{API}/customers",
        data=gzip.compress(padded),
        headers={**AUTH, "Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert resp.status == 413 and (await resp.json())["error"] == "PayloadTooLarge"


async def test_raw_content_encodings_get_the_error_body(client: Any) -> None:
    """From a socket, as the tester sent them: no plain-text 400 from the HTTP parser."""
    for coding, payload, status in [
        (b"br", b"\x8b\x02\x80{}\x03", 415),
        (b"gzip", b"not gzip", 400),
        (b"deflate", b"not deflate", 400),
    ]:
        got, headers, answer = await raw_http(
            client.port,
            b"POST /api/v1/customers HTTP/1.1\r\nHost: x\r\nAuthorization: test-key-1\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\nContent-Encoding: "
            + coding
            + b"\r\nContent-Length: %d\r\n\r\n" % len(payload)
            + payload,
        )
        assert got == status and headers["content-type"].startswith("application/json"), coding
        assert json.loads(answer)["error"]


async def test_a_body_said_to_be_over_the_limit_is_413_without_waiting_for_it(
    client: Any, sandbox: Any
) -> None:
    """A Content-Length of 10 GB and no body was waited for until the budget ran out, and
    answered 504 as if the CRM were slow."""
    head = (
        f"POST {API}/customer HTTP/1.1\r\nHost: x\r\nAuthorization: test-key-1\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000000000\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(head)
        # The answer, not the connection's end: the server lingers to read what was announced.
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(re.search(rb"(?i)content-length: *(\d+)", answer)[1])  # type: ignore[index]
        body = await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 413 ") and json.loads(body)["error"] == "PayloadTooLarge"
    assert not [c for c in sandbox.app[CALLS] if c.startswith("POST")]
