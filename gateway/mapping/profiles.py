"""Social profiles as Khoros names them: the network and the handle a profile URL points at,
and the handles a best-match body gives per network (docs/behaviour.md §1.6). Pure functions;
knows social networks, never a CRM (which handles a CRM can search is the mapping's to say).

A URL is read with `urllib.parse`, so its query, fragment, port, case and trailing slash do
not matter: ``https://m.facebook.com/profile.php?id=100004242``, ``instagram.com/janedoe/`` and
``https://x.com/janedoe/status/1`` each name one profile. A link that names no profile (a post,
a search, a hashtag) names no handle."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# A host and every host under it (www., m., mobile., uk., ...) -> Khoros's name of the network.
HOSTS = {
    "twitter.com": "twitter",
    "x.com": "twitter",
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "instagram.com": "instagram",
    "instagr.am": "instagram",
    "linkedin.com": "linkedin",
    "youtube.com": "youtube",
    "tiktok.com": "tiktok",
    "threads.net": "threads",
    "threads.com": "threads",
    "pinterest.com": "pinterest",
    "reddit.com": "reddit",
}
# What callers may call a network (`service`), where it is not the name itself.
ALIASES = {"x": "twitter", "fb": "facebook", "ig": "instagram"}

# What a handle of each network may be; anything else in its place is no handle.
_HANDLES = {
    "twitter": r"[A-Za-z0-9_]{1,15}",
    "facebook": r"[A-Za-z0-9.]{1,50}",
    "instagram": r"[A-Za-z0-9._]{1,30}",
    "linkedin": r"[A-Za-z0-9_%-]{2,100}",
    "youtube": r"[A-Za-z0-9._-]{1,100}",
    "tiktok": r"[A-Za-z0-9._]{1,24}",
    "threads": r"[A-Za-z0-9._]{1,30}",
    "pinterest": r"[A-Za-z0-9_]{1,30}",
    "reddit": r"[A-Za-z0-9_-]{1,20}",
}
HANDLES = {network: re.compile(pattern) for network, pattern in _HANDLES.items()}

# First path segments that are pages of the network, not profiles.
_PAGES = {
    "twitter": {"home", "i", "intent", "search", "hashtag", "explore", "settings", "messages",
                "notifications", "compose", "login", "signup", "share", "tos", "privacy"},
    "facebook": {"groups", "events", "watch", "marketplace", "gaming", "sharer", "sharer.php",
                 "share", "story.php", "permalink.php", "photo.php", "photo", "photos",
                 "video.php", "reel", "login", "home.php", "help", "policies", "hashtag",
                 "messages", "notifications", "friends", "settings", "search", "stories"},
    "instagram": {"p", "reel", "reels", "tv", "explore", "accounts", "direct", "about",
                  "legal", "developer", "web"},
    "pinterest": {"pin", "search", "ideas", "today", "settings", "business", "login"},
}  # fmt: skip


@dataclass(frozen=True)
class Profile:
    network: str  # Khoros's name: twitter, facebook, instagram, linkedin, youtube, tiktok, ...
    handle: str  # as the network writes it, without its @


def network_of(service: Any) -> str | None:
    """The network a caller's `service` names (``X`` is twitter), or None."""
    if not isinstance(service, str) or not service.strip():
        return None
    name = service.strip().casefold()
    return ALIASES.get(name, name)


def _host_network(host: str) -> str | None:
    host = host.rstrip(".").casefold()
    for domain, network in HOSTS.items():
        if host == domain or host.endswith("." + domain):
            return network
    return None


def _after(segments: list[str], *prefixes: str) -> str | None:
    """The segment after the first one, when the first is one of ``prefixes``."""
    if len(segments) >= 2 and segments[0].casefold() in prefixes:
        return segments[1]
    return None


def _at(segments: list[str]) -> str | None:
    """``/@handle/...``: the handle."""
    return segments[0][1:] if segments and segments[0].startswith("@") else None


def _first(network: str) -> Callable[[list[str], dict[str, list[str]]], str | None]:
    def read(segments: list[str], query: dict[str, list[str]]) -> str | None:
        if not segments or segments[0].casefold() in _PAGES.get(network, set()):
            return None
        return segments[0].removeprefix("@")

    return read


def _twitter(segments: list[str], query: dict[str, list[str]]) -> str | None:
    if _after(segments, "intent") is not None:  # /intent/user?screen_name=janedoe
        return next(iter(query.get("screen_name", [])), None)
    return _first("twitter")(segments, query)


def _facebook(segments: list[str], query: dict[str, list[str]]) -> str | None:
    if segments and segments[0].casefold() == "profile.php":  # profile.php?id=100004242
        return next(iter(query.get("id", [])), None)
    if len(segments) >= 3 and segments[0].casefold() in ("people", "pages"):
        return segments[2]  # /people/Jane-Doe/100004242
    return _first("facebook")(segments, query)


def _instagram(segments: list[str], query: dict[str, list[str]]) -> str | None:
    return _after(segments, "stories") or _first("instagram")(segments, query)


def _linkedin(segments: list[str], query: dict[str, list[str]]) -> str | None:
    return _after(segments, "in", "pub", "company", "school", "showcase")


def _youtube(segments: list[str], query: dict[str, list[str]]) -> str | None:
    return _at(segments) or _after(segments, "c", "user", "channel")


def _reddit(segments: list[str], query: dict[str, list[str]]) -> str | None:
    return _after(segments, "user", "u")


_READ: dict[str, Callable[[list[str], dict[str, list[str]]], str | None]] = {
    "twitter": _twitter,
    "facebook": _facebook,
    "instagram": _instagram,
    "linkedin": _linkedin,
    "youtube": _youtube,
    "tiktok": lambda segments, query: _at(segments),
    "threads": lambda segments, query: _at(segments),
    "pinterest": _first("pinterest"),
    "reddit": _reddit,
}


def profile(url: Any) -> Profile | None:
    """The profile a URL points at, or None (not a URL, another site, no profile in it)."""
    if not isinstance(url, str) or not url.strip():
        return None
    text = url.strip()
    if "://" not in text:
        text = "https://" + text.lstrip("/")  # `instagram.com/janedoe`, as people write it
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
    except ValueError:  # a bad port or bracket: no URL
        return None
    network = _host_network(host) if parts.scheme.casefold() in ("http", "https") else None
    if network is None:
        return None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    handle = _READ[network](segments, parse_qs(parts.query))
    if handle is None or not HANDLES[network].fullmatch(handle):
        return None
    return Profile(network, handle)


def _plain(handle: Any) -> str | None:
    if not isinstance(handle, str):
        return None
    text = handle.strip().removeprefix("@").strip()
    return text or None


def handles(body: Mapping[str, Any]) -> dict[str, list[str]]:
    """The handles a best-match body gives, by network: the one in `profileUrl`, and
    `screenName` (or `author.handle`) on the network of that URL, else of `service` (or
    `author.service`). A screen name whose network nothing tells is under no network: a
    handle on one network says nothing about another's."""
    out: dict[str, list[str]] = {}

    def add(network: str, handle: str) -> None:
        known = out.setdefault(network, [])
        if handle.casefold() not in (h.casefold() for h in known):
            known.append(handle)

    found = profile(body.get("profileUrl"))
    if found is not None:
        add(found.network, found.handle)
    author = body.get("author")
    author = author if isinstance(author, Mapping) else {}
    network = (
        (found.network if found is not None else None)
        or network_of(body.get("service"))
        or network_of(author.get("service"))
    )
    for given in (body.get("screenName"), author.get("handle")):
        handle = _plain(given)
        if network is not None and handle is not None:
            add(network, handle)
    return out
