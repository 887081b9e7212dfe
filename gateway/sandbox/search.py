"""Zendesk's search syntax over sandbox users and tickets, as fuzzy as the real one
(docs/behaviour.md §3, docs/sandbox.md): ``key:value``, ``key:"a phrase"``, ``"a phrase"``, bare
words, ``-`` negation, ``*`` wildcards, ``type:user``/``type:ticket``; terms AND together, the
same key repeated ORs; words match by prefix. A ticket's custom field is searched as
``custom_field_<id>:value``, as Zendesk documents it."""

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


Candidates = Callable[[Mapping[str, Any], str | None], list[str]]


def _texts(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values if v not in (None, "")]


def user_candidates(doc: Mapping[str, Any], key: str | None) -> list[str]:
    """The texts of a user document (the user, its identities, its org name) that a term
    with ``key`` (None: a bare word) is matched against."""
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
    return _texts(values)


TICKET_KEYS = ("subject", "description", "status", "priority")


def ticket_candidates(doc: Mapping[str, Any], key: str | None) -> list[str]:
    """The texts of a ticket document (the ticket, its comments' bodies, its requester) that
    a term with ``key`` is matched against. A key Zendesk's ticket search does not know
    matches nothing (harsher than a search that ignores it)."""
    custom = {f"custom_field_{c['id']}": c.get("value") for c in doc.get("custom_fields") or []}
    requester = doc.get("requester") or {}
    if key is None:
        values = [doc.get("id"), *(doc.get(k) for k in ("subject", "description"))]
        values += [*doc.get("comments", []), *doc.get("tags", []), *custom.values()]
    elif key in TICKET_KEYS:
        values = [doc.get(key)]
    elif key == "ticket_type":
        values = [doc.get("type")]
    elif key == "comment":
        values = list(doc.get("comments", []))
    elif key == "tags":
        values = list(doc.get("tags", []))
    elif key == "requester":
        values = [requester.get("name"), requester.get("email")]
    else:
        values = [custom.get(key)]
    return _texts(_text(v) for v in values)


def _text(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


def types(query: str) -> set[str]:
    """The result types a query asks for (``type:ticket``); none: every type."""
    found = set()
    for token in _tokens(query):
        key, sep, value = token.partition(":")
        if sep and key.casefold() == "type":
            found.add(value.casefold())
    return found


def compile_query(
    query: str, candidates: Candidates = user_candidates
) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over a document: a user's (``user_candidates``) or a ticket's."""
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

    def predicate(doc: Mapping[str, Any]) -> bool:
        for key, values in keyed.items():
            if not any(_value_matches(v, candidates(doc, key)) for v in values):
                return False
        for value in free:
            if not _value_matches(value, candidates(doc, None)):
                return False
        return not any(_value_matches(v, candidates(doc, k)) for k, v in negated)

    return predicate
