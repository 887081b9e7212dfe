"""What serves requests: the config, the mapping and everything built from them, made once per
config (a reload makes a new one; `gateway.reloading` swaps it in)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import connect
from gateway.cache import AsyncTTLCache, Caches, CacheSettings
from gateway.config import Config
from gateway.fleet.state import Fleet
from gateway.lifecycle import Lifecycle
from gateway.locks import LocalLocks
from gateway.mapping.bestmatch import BestMatch
from gateway.mapping.cases import CaseWrites
from gateway.mapping.codecs import Codecs, PhoneNumbers
from gateway.mapping.customers import CustomerWrites
from gateway.mapping.engine import Engine
from gateway.mapping.model import MappingSpec
from gateway.mapping.priority_routing import PriorityRouting
from gateway.recall import LocalRecall
from gateway.upstream import Upstream
from gateway.upstream.call import Transport

# Readiness probes closer together than this share one upstream call and its answer.
READINESS = CacheSettings(ttl_seconds=2.0, max_entries=1, stale_seconds=0)


@dataclass
class Runtime:
    config: Config
    mapping: MappingSpec
    upstream: Upstream
    caches: Caches
    engine: Engine  # runs the mapping's operations; the Khoros API's reads
    bestmatch: BestMatch
    cases: CaseWrites  # the Khoros API's writes
    customers: CustomerWrites
    priority_routing: PriorityRouting | None  # None: the mapping has no `expertflow` section
    fleet: Fleet | None  # what it shares with the other processes (None: nothing)
    readiness: AsyncTTLCache[tuple[int, dict[str, Any]]]  # the CRM's last readiness answer
    lifecycle: Lifecycle  # the app's, kept across reloads


def build(
    config: Config,
    mapping: MappingSpec,
    *,
    transport: Transport | None = None,
    fleet: Fleet | None = None,
    lifecycle: Lifecycle | None = None,
) -> Runtime:
    """Everything a config and its mapping make; raises ConfigError, touches no network.
    ``transport`` replaces HTTP to the upstream (`explain`'s dry run); ``fleet`` is the state
    shared with other processes and kept across reloads (none: this process on its own), such
    as the per-case locks and what creates made; ``lifecycle`` is the app's (a reload passes
    it on)."""
    upstream = connect.upstream(config, mapping, transport, fleet=fleet)
    caches = Caches(config.cache)
    engine = Engine(
        mapping,
        upstream,
        caches,
        settings=config.settings,
        upstream_url=config.upstream.base_url,
        codecs=Codecs(PhoneNumbers(config.phones.default_region)),
    )
    locks = fleet.locks if fleet is not None else LocalLocks()
    recall = fleet.recall if fleet is not None else LocalRecall()
    grace = config.upstream.attempt_timeout_seconds
    spec = mapping.priority_routing
    priority_routing = (
        PriorityRouting(engine, spec, not_found=config.expertflow.not_found)
        if spec is not None
        else None
    )
    return Runtime(
        config,
        mapping,
        upstream,
        caches,
        engine,
        BestMatch(engine, config.bestmatch),
        CaseWrites(engine, locks=locks, recall=recall, grace_seconds=grace),
        CustomerWrites(engine, locks=locks, recall=recall, grace_seconds=grace),
        priority_routing,
        fleet,
        AsyncTTLCache("readiness", READINESS),
        lifecycle or Lifecycle(),
    )
