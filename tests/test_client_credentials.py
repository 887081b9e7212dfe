"""The OAuth2 client-credentials grant against a local fake of a token endpoint (conftest's
FakeKhoros), through real HTTP."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from conftest import SPECS, FakeKhoros, free_port

from gateway import client_credentials
from gateway.client_credentials import GrantError, fetch_token, token_url


def test_the_fallback_is_the_registration_apis_security_scheme() -> None:
    spec = json.loads((SPECS / "khoros-crm-registration.openapi.json").read_text())
    scheme = spec["components"]["securitySchemes"]["sec0"]
    assert scheme["type"] == "oauth2"
    published = scheme["flows"]["clientCredentials"]["tokenUrl"]
    assert published == client_credentials.SCHEME_TOKEN_URL
    # ... which is a placeholder: without KHOROS_TOKEN_URL the grant cannot be made.
    with pytest.raises(GrantError, match=r"KHOROS_TOKEN_URL is not set.*placeholder") as err:
        token_url("")
    assert published in str(err.value)


def test_the_token_url_must_be_real_and_private() -> None:
    real = "https://login.khoros.invalid/oauth2/token"
    assert token_url(f" {real} ") == real
    assert token_url("http://127.0.0.1:9/token") == "http://127.0.0.1:9/token"  # loopback
    assert token_url("http://localhost:9/token") == "http://localhost:9/token"
    with pytest.raises(GrantError, match="is a placeholder"):
        token_url("https://auth.example.com/token")
    with pytest.raises(GrantError, match="must be https: the client secret"):
        token_url("http://login.khoros.invalid/token")
    with pytest.raises(GrantError, match="must be an https URL"):
        token_url("login.khoros.invalid/token")


async def test_the_grant_obtains_a_bearer_token(khoros: FakeKhoros) -> None:
    async with aiohttp.ClientSession() as session:
        token = await fetch_token(
            session, khoros.token_url, khoros.client_id, khoros.client_secret, 5
        )
    assert token == khoros.issued
    assert khoros.grants[0]["form"] == {"grant_type": "client_credentials"}  # no secret in it


async def test_a_refused_grant_says_why_without_the_secret(khoros: FakeKhoros) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(GrantError) as err:
            await fetch_token(session, khoros.token_url, khoros.client_id, "wrong-s3cret", 5)
    message = str(err.value)
    assert "refused the grant: 401 invalid_client: Client authentication failed" in message
    assert "check KHOROS_CLIENT_ID and KHOROS_CLIENT_SECRET" in message
    assert "wrong-s3cret" not in message


@pytest.mark.parametrize(
    ("status", "answer", "problem"),
    [
        (200, {"token_type": "bearer"}, "200 an answer without an access_token"),
        (200, {"access_token": "t", "token_type": "mac"}, "issued a 'mac' token"),
        (500, "<html>oops</html>", "refused the grant: 500"),
        (200, ["not", "an", "object"], "without an access_token"),
    ],
)
async def test_odd_token_answers_are_errors(
    aiohttp_server: Any, status: int, answer: Any, problem: str
) -> None:
    async def token(request: web.Request) -> web.Response:
        if isinstance(answer, str):
            return web.Response(status=status, text=answer)
        return web.json_response(answer, status=status)

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(GrantError, match=problem):
            await fetch_token(session, str(server.make_url("/token")), "id", "secret", 5)


async def test_an_unreachable_token_endpoint_is_an_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/token"  # nothing listens there
    async with aiohttp.ClientSession() as session:
        with pytest.raises(GrantError, match="cannot reach the token endpoint"):
            await fetch_token(session, url, "id", "secret", 5)
