"""What an operation declares, and where each realm is served."""

from __future__ import annotations

from typing import Any

from conftest import tuned

from gateway.config import Config
from gateway.operation import REALM_STATUSES, Args, Operation, prefixes


async def handler(live: Any, args: Args) -> Any:
    return args.params


def test_its_statuses_are_its_own_and_its_realms() -> None:
    op = Operation("x", "GET", "/case/{id}/notes/{note}", handler, "khoros", {}, errors=(404, 401))
    assert op.statuses() == tuple(sorted({404, *REALM_STATUSES["khoros"]}))
    assert op.params == ["id", "note"] and op.budget == "default" and op.body is None
    assert Operation("h", "GET", "/healthz", handler, "ops", {}, budget=None).statuses() == ()


def test_each_realm_where_the_config_serves_it(config: Config) -> None:
    served = prefixes(tuned(config, expertflow={"path_prefix": "/hc"}))
    assert served == {"khoros": "/api/v1", "hybrid_chat": "/hc", "admin": "", "ops": ""}
