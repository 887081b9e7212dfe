"""What the upstream client is given from the config and the mapping: headers, auth headers for
the configured credentials, and the mapping's rate-limit rule as plain functions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from conftest import ROOT, answer, tuned

from gateway import connect
from gateway.config import Config, OAuthSettings, Secret
from gateway.errors import ConfigError
from gateway.mapping.spec import load_mapping
from gateway.upstream.auth import OAuthFlow, StaticAuth

ZENDESK = load_mapping(ROOT / "mappings/zendesk.yaml")
RT5 = load_mapping(ROOT / "mappings/rt5.yaml")


def test_zendesks_account_quota_header_tells_a_narrow_limit() -> None:
    limits = connect.rate_limits(ZENDESK.rate_limits)
    assert limits.narrow(answer(429, Retry_After="60", X_Rate_Limit_Remaining="399"))
    assert not limits.narrow(answer(429, Retry_After="60", X_Rate_Limit_Remaining="0"))
    assert not limits.narrow(answer(429, Retry_After="60"))  # unknown: the whole account
    assert not limits.narrow(answer(429, X_Rate_Limit_Remaining="many"))
    assert limits.scope("PUT", "/api/v2/users/1001", "/api/v2/users/{{ id }}") == (
        "PUT /api/v2/users/1001"
    )


def test_rt_declares_no_rule_so_every_limit_is_account_wide() -> None:
    assert RT5.rate_limits is None
    limits = connect.rate_limits(RT5.rate_limits)
    assert not limits.narrow(answer(429, X_Rate_Limit_Remaining="399"))


def test_a_rule_may_read_the_body_and_scope_by_endpoint(tmp_path: Path) -> None:
    text = (ROOT / "mappings/zendesk.yaml").read_text()
    rule = (
        "rate_limits:\n"
        "  narrow: \"contains(body, 'single unique user')\"\n"
        '  scope: "{{ method }} {{ route }}"\n'
    )
    start = text.index("rate_limits:")
    end = text.index("\nerrors:")
    (tmp_path / "m.yaml").write_text(text[:start] + rule + text[end:])
    limits = connect.rate_limits(load_mapping(tmp_path / "m.yaml").rate_limits)
    plain = answer(429)
    plain = dataclasses.replace(
        plain, text="You have exceeded the rate limit for updating a single unique user"
    )
    assert limits.narrow(plain) and not limits.narrow(answer(429, {"error": "x"}))
    assert limits.scope("PUT", "/api/v2/users/1", "/api/v2/users/{{ id }}") == (
        "PUT /api/v2/users/{{ id }}"
    )


def test_auth_headers_of_the_first_rule_that_holds(config: Config) -> None:
    up = connect.upstream(config, ZENDESK)
    assert isinstance(up.auth, StaticAuth)
    assert up.auth.headers["Authorization"].startswith("Basic ")
    assert up.headers == {"Accept": "application/json"}
    oauth = {**config.upstream.credentials, "oauth_token": Secret("tok")}
    headers = connect.auth_headers(ZENDESK, oauth)
    assert headers == {"Authorization": "Bearer tok"}


def test_oauth_refresh_needs_the_mappings_token_url(config: Config, tmp_path: Path) -> None:
    oauth = OAuthSettings(Secret("id"), Secret("secret"), Secret("refresh"), None, 300)
    refreshing = tuned(config, upstream={"oauth": oauth})
    assert isinstance(connect.upstream(refreshing, ZENDESK).auth, OAuthFlow)
    with pytest.raises(ConfigError, match=r"oauth\.token_url"):
        connect.upstream(refreshing, RT5)
