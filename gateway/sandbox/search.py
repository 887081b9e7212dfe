"""Zendesk's search syntax over sandbox users, as fuzzy as the real one (docs/behaviour.md §3):
``key:value``, ``key:"a phrase"``, ``"a phrase"``, bare words, ``-`` negation, ``*`` wildcards,
``type:user``; terms AND together, the same key repeated ORs; words match by prefix."""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
PLAIN_KEYS = ("name", "email", "phone", "external_id", "notes", "details", "alias")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _value_matches(value: str, candidates: Iterable[str]) -> bool:
    """Fuzzy like Zendesk: every word of the value is a prefix of some word of a candidate."""
    if "*" in value:
        pattern = value.casefold()
        return any(fnmatch.fnmatchcase(c.casefold(), pattern) for c in candidates)
    wanted = _words(value)
    if not wanted:
        return False
    digits = re.sub(r"\D", "", value)
    for c in candidates:
        have = _words(c)
        if all(any(h.startswith(w) for h in have) for w in wanted):
            return True
        if digits and len(digits) >= 4 and digits in re.sub(r"\D", "", c):
            return True
    return False


def _tokens(query: str) -> list[str]:
    lexer = shlex.shlex(query, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: Zendesk searches the words anyway
        return query.replace('"', " ").split()


def compile_query(query: str) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over a user document (the user, its identities, its org name)."""
    keyed: dict[str, list[str]] = {}
    negated: list[tuple[str | None, str]] = []
    free: list[str] = []
    for token in _tokens(query):
        negate = token.startswith("-") and len(token) > 1
        token = token[1:] if negate else token
        key, sep, value = token.partition(":")
        if not sep or not key or " " in key:
            key, value = "", token
        key = key.casefold()
        if key == "type":
            continue
        if negate:
            negated.append((key or None, value))
        elif key:
            keyed.setdefault(key, []).append(value)
        else:
            free.append(value)

    def candidates(doc: Mapping[str, Any], key: str | None) -> list[str]:
        values: list[Any]
        if key is None:
            values = [doc.get(k) for k in PLAIN_KEYS]
            values += [i.get("value") for i in doc.get("identities", [])]
            values += [doc.get("organization")]
            values += list((doc.get("user_fields") or {}).values())
        elif key == "organization":
            values = [doc.get("organization")]
        elif key in PLAIN_KEYS or key in ("role", "tags"):
            own = doc.get(key)
            values = list(own) if isinstance(own, list) else [own]
            if key in ("email", "phone"):
                values += [i["value"] for i in doc.get("identities", []) if i["type"] == key]
        else:
            values = [(doc.get("user_fields") or {}).get(key)]
        return [str(v) for v in values if v not in (None, "")]

    def predicate(doc: Mapping[str, Any]) -> bool:
        for key, values in keyed.items():
            if not any(_value_matches(v, candidates(doc, key)) for v in values):
                return False
        for value in free:
            if not _value_matches(value, candidates(doc, None)):
                return False
        return not any(_value_matches(v, candidates(doc, k)) for k, v in negated)

    return predicate
