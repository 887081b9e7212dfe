"""What a config and its mapping make: built without touching the network, each service on the
one engine, the fleet's shared state when there is one."""

from __future__ import annotations

from dataclasses import replace

from conftest import ROOT, FakeTransport, answer

from gateway import runtime
from gateway.config import Config
from gateway.fleet.state import Fleet
from gateway.mapping.spec import load_mapping

ZENDESK = load_mapping(ROOT / "mappings/zendesk.yaml")


async def test_everything_is_built_on_one_engine_and_sends_nothing(config: Config) -> None:
    transport = FakeTransport(answer(200, {}))
    live = runtime.build(config, ZENDESK, transport=transport)
    assert live.cases.engine is live.customers.engine is live.engine
    assert live.priority_routing is not None and live.priority_routing.engine is live.engine
    assert live.engine.caches is live.caches and live.fleet is None
    assert live.engine.codecs.phones.region is None and transport.calls == []


async def test_the_fleets_locks_and_memory_serve_the_writes(config: Config) -> None:
    fleet = Fleet()
    live = runtime.build(config, ZENDESK, fleet=fleet)
    assert live.cases.locks is fleet.locks and live.customers.recall is fleet.recall
    assert live.fleet is fleet
    alone = runtime.build(config, ZENDESK)
    assert alone.cases.locks is alone.customers.locks  # one writer per key, one process


async def test_a_mapping_without_hybrid_chat_serves_none(config: Config) -> None:
    live = runtime.build(config, replace(ZENDESK, priority_routing=None))
    assert live.priority_routing is None
