"""How far one best match may fan out (docs/behaviour.md §1.6). Each value a strategy finds in
the body is one upstream search; a caller listing 1,000 phone numbers must not spend the CRM's
allowance of every other caller. The searches are chosen here, pure and bounded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.mapping.model import Strategy


@dataclass(frozen=True)
class FanOutLimits:
    values_per_strategy: int  # a strategy searches for its first this many distinct values
    max_searches: int  # upstream searches of one best match, over all strategies


def plan(
    strategies: Sequence[Strategy], given: Mapping[str, Any], limits: FanOutLimits
) -> tuple[list[tuple[Strategy, str]], int]:
    """The (strategy, value) searches to run, in strategy order (best first), and how many
    values were left out. ``given``: what the strategies' `values` read (`body`, `handles`).
    When the total is over the limit, the values are taken in rounds (every strategy's first
    value, then every second one, ...), so one long list cannot crowd out the others."""
    found = [_values(s, given) for s in strategies]
    kept = [values[: limits.values_per_strategy] for values in found]
    chosen: list[list[str]] = [[] for _ in strategies]
    left = limits.max_searches
    for rank in range(max((len(k) for k in kept), default=0)):
        for i, values in enumerate(kept):
            if rank < len(values) and left > 0:
                chosen[i].append(values[rank])
                left -= 1
    ignored = sum(map(len, found)) - sum(map(len, chosen))
    return [(s, v) for s, values in zip(strategies, chosen, strict=True) for v in values], ignored


def _values(strategy: Strategy, given: Mapping[str, Any]) -> list[str]:
    """The distinct, non-blank values the strategy's expression finds in the body."""
    raw = strategy.values(given)
    items = raw if isinstance(raw, list) else [raw]
    usable = (str(v) for v in items if isinstance(v, str | int) and not isinstance(v, bool))
    return list(dict.fromkeys(v for v in usable if v.strip()))
