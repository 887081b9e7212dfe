"""`POST /admin/cache/purge`: its body is checked before anything is emptied."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import EF_AUTH, ROOT, gateway_env

from gateway.config import Config, load_config
from gateway.sandbox.server import CALLS

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
async def admin(make_client: Any, config: Config) -> Any:
    env = gateway_env(config.upstream.base_url, GATEWAY_ADMIN_KEY="admin-secret")
    return await make_client(load_config(ROOT / "config.example.yaml", env=env))


def label_reads(sandbox: Any) -> int:
    return sum("/api/v2/user_fields" in c for c in sandbox.app[CALLS])


MALFORMED = [
    b"[1]",
    b'"labels"',
    b"null",
    b'{"caches": [[]]}',
    b'{"caches": [{"a": 1}]}',
    b'{"caches": "labels"}',
    b'{"caches": ["labels", 3]}',
    b'{"caches": ["nope"]}',
    b'{"cache": ["labels"]}',
    b'{"caches": ["labels"]',
    b'{"caches": ["lab\\ud800els"]}',
    b'{"caches": ["lab\xffels"]}',
    b"[" * 5000,
    b"[" * 2000 + b"]" * 2000,
]


async def test_a_malformed_purge_is_400_and_nothing_is_purged(admin: Any, sandbox: Any) -> None:
    assert (await admin.get("/label", headers=EF_AUTH)).status == 200
    for raw in MALFORMED:
        resp = await admin.post("/admin/cache/purge", data=raw, headers=ADMIN)
        assert resp.status == 400, raw[:40]
        body = await resp.json()
        assert body["error"] == "BadRequest" and "tracking id" in body["message"]
    assert (await admin.get("/label", headers=EF_AUTH)).status == 200
    assert label_reads(sandbox) == 1  # the cached labels are still there


async def test_a_valid_purge_with_or_without_a_content_type(admin: Any, sandbox: Any) -> None:
    await admin.get("/label", headers=EF_AUTH)
    for headers in (ADMIN, {**ADMIN, "Content-Type": "application/x-www-form-urlencoded"}):
        resp = await admin.post(
            "/admin/cache/purge", data=b'{"caches": ["labels"]}', headers=headers
        )
        assert resp.status == 200 and await resp.json() == {"purged": ["labels"], "processes": 1}
    everything = await admin.post("/admin/cache/purge", headers=ADMIN)
    assert (await everything.json())["purged"] == [
        "meta",
        "field_definitions",
        "labels",
        "customer_by_phone",
    ]


async def test_racing_purges_and_reads_stay_consistent(admin: Any, sandbox: Any) -> None:
    """Purges racing reads: every read answers, and each purge costs at most one reload."""
    calls = [admin.get("/label", headers=EF_AUTH) for _ in range(20)]
    purge = {"json": {"caches": ["labels"]}, "headers": ADMIN}
    calls += [admin.post("/admin/cache/purge", **purge) for _ in range(3)]
    answers = await asyncio.gather(*calls)
    assert all(a.status == 200 for a in answers)
    assert 1 <= label_reads(sandbox) <= 4
