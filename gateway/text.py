"""Text from outside the gateway, made safe to carry.

Python keeps what is not valid Unicode text inside a ``str``: aiohttp decodes header bytes that
are not UTF-8 as lone surrogates (``surrogateescape``), and the standard ``json`` module turns a
``"\\ud800"`` escape into a lone surrogate. Such a string cannot be encoded, so it must not reach
an upstream request, a response body or a log line. Callers' text is refused (or treated as
absent); the CRM's text is repaired, because a record the gateway cannot change must still read.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"
# Lone surrogates (a valid pair is one character once decoded) and NUL.
_BROKEN = re.compile("[\ud800-\udfff\x00]")
# In JSON text, the only ways to such characters are escapes (raw bytes were decoded with
# errors="replace" and raw control characters are not JSON): a cheap test before a walk.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")


def is_text(value: str) -> bool:
    """Whether the string is valid Unicode text (it can be encoded as UTF-8)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def shown(value: str) -> str:
    """The string with what is not text replaced, for naming it in an error body."""
    return _BROKEN.sub(REPLACEMENT, value)


def may_need_repair(json_text: str) -> bool:
    """Whether parsed JSON of this text may hold lone surrogates or NUL (see `repaired`)."""
    return "\\u" in json_text and _SUSPECT_ESCAPE.search(json_text) is not None


def repaired(value: Any) -> Any:
    """Parsed JSON with lone surrogates and NUL in every string (keys too) replaced by U+FFFD.
    Containers are repaired in place, without recursion: the CRM decides how deep they go."""
    if isinstance(value, str):
        return _BROKEN.sub(REPLACEMENT, value)
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, str):
                    node[i] = _BROKEN.sub(REPLACEMENT, item)
                elif isinstance(item, list | dict):
                    stack.append(item)
        elif isinstance(node, dict):
            items = [
                (_BROKEN.sub(REPLACEMENT, k) if isinstance(k, str) else k, v)
                for k, v in node.items()
            ]
            node.clear()
            for k, v in items:
                node[k] = _BROKEN.sub(REPLACEMENT, v) if isinstance(v, str) else v
                if isinstance(v, list | dict):
                    stack.append(v)
    return value
