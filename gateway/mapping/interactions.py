"""Khoros interactions on the upstream record: rendered into comments with a marker each, so
an interaction already on the record is never added again; and the idempotency key of a create.
Pure functions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from gateway.mapping.model import Interactions


def comment(spec: Interactions, interactions: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The rendered interactions by marker (each once), and the comment text they make."""
    rendered: dict[str, str] = {}
    for raw in interactions:
        i = {**raw, "author": raw.get("author") or {}}  # author is optional in the spec
        marker = str(spec.marker({"i": i}))
        if marker not in rendered:
            rendered[marker] = str(spec.template({"i": i, "marker": marker}))
    text = spec.separator.join(rendered.values())
    return {"interactions": rendered, "comment": text or None}


def drop_existing(spec: Interactions, ctx: dict[str, Any], texts: Any) -> None:
    """Leave out of ctx's comment the interactions whose marker is already in `texts`."""
    have = [t for t in texts if isinstance(t, str)] if isinstance(texts, list) else []
    rendered = {m: t for m, t in ctx.get("interactions", {}).items() if not _on(m, have)}
    text = spec.separator.join(rendered.values())
    ctx.update(interactions=rendered, comment=text or None)


def _on(marker: str, texts: list[str]) -> bool:
    return bool(marker) and any(marker in t for t in texts)


def idempotency_key(body: Mapping[str, Any]) -> str:
    """Same customer, title and interactions: same key, so a repeat returns the same record."""
    identity = [
        str(body.get("customerId", "")),
        str(body.get("title", "")),
        sorted(
            f"{i.get('service', '')}:{i.get('serviceId', '')}"
            for i in body.get("interactions") or []
        ),
    ]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
    return f"crm-gateway-{digest[:40]}"
