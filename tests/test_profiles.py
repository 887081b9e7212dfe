"""Social profiles: the network and handle a profile URL names, however it is written, and the
handles a best-match body gives per network (docs/behaviour.md §1.6)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.mapping.profiles import Profile, handles, network_of, profile


@pytest.mark.parametrize(
    ("url", "network", "handle"),
    [
        ("https://www.facebook.com/profile.php?id=100004242", "facebook", "100004242"),
        ("https://m.facebook.com/profile.php?id=100004242&ref=bookmarks", "facebook", "100004242"),
        ("https://facebook.com/people/Jane-Doe/100004242/", "facebook", "100004242"),
        ("https://web.facebook.com/jane.doe/posts/123", "facebook", "jane.doe"),
        ("instagram.com/janedoe/", "instagram", "janedoe"),
        ("HTTPS://WWW.INSTAGRAM.COM/Jane_Doe?igsh=abc#top", "instagram", "Jane_Doe"),
        ("https://instagram.com/stories/jane.roe/3141/", "instagram", "jane.roe"),
        ("https://x.com/janedoe/status/1", "twitter", "janedoe"),
        ("http://mobile.twitter.com/JaneDoe", "twitter", "JaneDoe"),
        ("https://twitter.com/intent/user?screen_name=janedoe", "twitter", "janedoe"),
        ("//x.com/@janedoe", "twitter", "janedoe"),
        ("https://uk.linkedin.com/in/jane-doe-1a2b3c/", "linkedin", "jane-doe-1a2b3c"),
        ("https://www.linkedin.com/company/acme-ag", "linkedin", "acme-ag"),
        ("https://www.youtube.com/@JaneDoe/videos", "youtube", "JaneDoe"),
        ("https://youtube.com/channel/UC1234567890", "youtube", "UC1234567890"),
        ("https://www.tiktok.com/@jane.doe/video/7", "tiktok", "jane.doe"),
        ("https://www.threads.net/@janedoe", "threads", "janedoe"),
        ("https://www.reddit.com/user/jane_doe/", "reddit", "jane_doe"),
        ("https://x.com:8443/janedoe", "twitter", "janedoe"),
    ],
)
def test_a_profile_url_names_its_network_and_handle(url: str, network: str, handle: str) -> None:
    assert profile(url) == Profile(network, handle)


@pytest.mark.parametrize(
    "url",
    [
        "https://x.com/i/web/status/1",  # a post, not a profile
        "https://twitter.com/search?q=jane",
        "https://twitter.com/jane.doe",  # no twitter handle has a dot
        "https://www.facebook.com/",
        "https://www.facebook.com/groups/12345",
        "https://www.facebook.com/profile.php",  # no id
        "https://www.instagram.com/p/C0ffee/",
        "https://www.linkedin.com/feed/",
        "https://www.tiktok.com/janedoe",  # TikTok profiles are /@handle
        "https://evilx.com/janedoe",
        "https://x.com.evil.example/janedoe",
        "ftp://x.com/janedoe",
        "mailto:jane@x.com",
        "https://[::1/janedoe",
        "not a url",
        "",
        None,
        42,
    ],
)
def test_a_link_that_names_no_profile_names_no_handle(url: Any) -> None:
    assert profile(url) is None


def test_the_network_of_a_service() -> None:
    assert network_of("Instagram") == "instagram" and network_of(" X ") == "twitter"
    assert network_of("") is None and network_of(None) is None and network_of(7) is None


def test_handles_by_network() -> None:
    assert handles({"profileUrl": "https://x.com/janedoe", "screenName": "@JaneDoe"}) == {
        "twitter": ["janedoe"]  # the same handle once, whatever its case
    }
    assert handles(
        {"profileUrl": "https://facebook.com/profile.php?id=100004242", "screenName": "jd"}
    ) == {"facebook": ["100004242", "jd"]}
    # A screen name is on the network the URL, the body's service or its author names ...
    assert handles({"screenName": "jane.roe", "service": "INSTAGRAM"}) == {
        "instagram": ["jane.roe"]
    }
    author = {"author": {"service": "twitter", "handle": "@jane"}}
    assert handles(author) == {"twitter": ["jane"]}
    # ... and on none when nothing names one: a handle on one network says nothing of another.
    assert handles({"screenName": "janedoe"}) == {}
    assert handles({"screenName": "  ", "service": "twitter", "author": "x"}) == {}


@given(
    st.dictionaries(
        st.sampled_from(["profileUrl", "screenName", "service", "author"]),
        st.none() | st.text() | st.integers() | st.dictionaries(st.text(), st.text()),
    )
)
def test_any_body_gives_handles_or_none_never_an_error(body: dict[str, Any]) -> None:
    found = handles(body)
    for network, listed in found.items():
        assert network and all(isinstance(h, str) and h.strip() for h in listed)
        assert len({h.casefold() for h in listed}) == len(listed)
