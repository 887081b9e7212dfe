"""Auth as a layer: static headers under the request's own, and the OAuth flow, which sends
the current token and re-sends once with a new one after a 401."""

from __future__ import annotations

from conftest import FakeClock, answer

from gateway.config import Secret
from gateway.exchange import Response
from gateway.upstream.auth import OAuthFlow, StaticAuth
from gateway.upstream.call import Call
from gateway.upstream.shared import LocalTokenStore, Tokens
from gateway.upstream.tokens import OAuthClient, TokenKeeper

CALL = Call("GET", "/users/1", "/users/{{ id }}", headers={"X-Own": "mine"})


class Recorder:
    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.sent: list[Call] = []

    async def __call__(self, call: Call) -> Response:
        self.sent.append(call)
        return answer(self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0], {})


async def test_static_headers_go_under_the_requests_own() -> None:
    send = Recorder(200)
    auth = StaticAuth({"Authorization": "Basic abc", "X-Own": "theirs"})
    await auth.send(CALL, send)
    assert send.sent[0].headers == {"Authorization": "Basic abc", "X-Own": "mine"}


def oauth(tokens: Tokens) -> tuple[OAuthFlow, list[str]]:
    grants: list[str] = []

    async def endpoint(call: Call) -> Response:
        grants.append(call.body["refresh_token"])
        return answer(200, {"access_token": f"new-{len(grants)}", "expires_in": 3600})

    client = OAuthClient("/oauth/tokens", Secret("id"), Secret("secret"))
    keeper = TokenKeeper(client, LocalTokenStore(tokens), endpoint, FakeClock())
    return OAuthFlow(keeper, {"X-Tenant": "acme"}), grants


async def test_the_current_token_is_sent() -> None:
    flow, grants = oauth(Tokens("current", "r"))
    send = Recorder(200)
    assert (await flow.send(CALL, send)).status == 200
    assert send.sent[0].headers == {
        "X-Tenant": "acme",
        "Authorization": "Bearer current",
        "X-Own": "mine",
    }
    assert grants == []


async def test_a_401_refreshes_and_sends_again_once() -> None:
    flow, grants = oauth(Tokens("revoked", "r"))
    send = Recorder(401, 200)
    assert (await flow.send(CALL, send)).status == 200
    assert [c.headers["Authorization"] for c in send.sent] == ["Bearer revoked", "Bearer new-1"]
    assert send.sent[1].retry_reason == "401" and grants == ["r"]


async def test_a_second_401_is_the_answer() -> None:
    flow, grants = oauth(Tokens("revoked", "r"))
    send = Recorder(401)
    assert (await flow.send(CALL, send)).status == 401  # translated to a loud 502 upstream
    assert len(send.sent) == 2 and len(grants) == 1
