"""docs/mappings.md documents every key the mapping schema allows."""

from __future__ import annotations

from typing import Any

from conftest import ROOT

from gateway.yamlfile import schema


def keys(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            out.add(name)
            keys(sub, out)
        for value in node.values():
            keys(value, out)
    elif isinstance(node, list):
        for value in node:
            keys(value, out)
    return out


def test_every_mapping_key_is_documented() -> None:
    docs = (ROOT / "docs/mappings.md").read_text()
    missing = sorted(k for k in keys(schema("mapping"), set()) if f"`{k}`" not in docs)
    assert missing == []
