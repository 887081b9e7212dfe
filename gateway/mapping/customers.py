"""Writing customers once and whole (docs/behaviour.md §1.4):

- a value of a `unique` field (an email, a handle) that another customer holds is refused
  (422) before anything is written, so an update is never half applied;
- a create whose answer comes late is not abandoned: identical creates share one task that
  runs on past the caller's deadline, and what it made is remembered under the body's digest,
  so the repeat finds it. When the outcome stays unknown, the customer is looked up by its
  unique fields (and so is every create's, before it is made);
- a create identical to a customer that exists (every value sent, a unique one among them) is
  that customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.cache import SingleFlight
from gateway.errors import AttemptTimedOut, BadGateway, FieldError, NotFound, ValidationFailed
from gateway.locks import KeyedLocks
from gateway.mapping import fields as fm
from gateway.mapping import interactions as im
from gateway.mapping.engine import Engine
from gateway.mapping.model import FieldSpec, ObjectSpec
from gateway.mapping.once import lease, past_deadline
from gateway.recall import Recall

REMEMBER_SECONDS = 15 * 60.0


class CustomerWrites:
    def __init__(
        self, engine: Engine, *, locks: KeyedLocks, recall: Recall, grace_seconds: float
    ) -> None:
        """As `CaseWrites`: creates of one body are held one at a time, remembered, and run
        on past their caller's deadline for ``grace_seconds``."""
        self.engine = engine
        self.locks, self.recall, self.grace_seconds = locks, recall, grace_seconds
        self._inflight: SingleFlight[dict[str, Any]] = SingleFlight()

    async def update(self, id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        e = self.engine
        obj = await e.object("customer")
        changes = self.engine.changes(obj, body)
        await self._taken(obj, body, me=id)
        made = await e.run_one("update_customer", obj, {"id": id, "changes": changes})
        return e.verified(obj, body, made)

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key, grace = im.digest(body), self.grace_seconds

        async def seen_through() -> dict[str, Any]:
            return await past_deadline(lambda: self._create(body, key), grace)

        return await self._inflight.run(key, seen_through)

    async def _create(self, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        e = self.engine
        obj = await e.object("customer")
        changes = self.engine.changes(obj, body)  # 400 and 422 before anything else
        async with self.locks.hold(f"customer:{key}", lease()):
            seen = await self.recall.get(f"customer:{key}")
            if isinstance(seen, dict) and seen.get("id"):
                try:
                    return await e.find_customer(str(seen["id"]))
                except NotFound:
                    await self.recall.forget(f"customer:{key}")
            same = await self._taken(obj, body, me=None)
            if same is not None:
                e.log.info("customer_create_repeated", customer=same["id"])
                made = same
            else:
                made = await self._make(obj, body, changes)
            await self.recall.put(f"customer:{key}", {"id": made["id"]}, REMEMBER_SECONDS)
            return e.verified(obj, body, made)

    async def _make(
        self, obj: ObjectSpec, body: Mapping[str, Any], changes: dict[str, Any]
    ) -> dict[str, Any]:
        e = self.engine
        try:
            return await e.run_one("create_customer", obj, {"changes": changes})
        except (AttemptTimedOut, BadGateway):
            # Made or not? Look it up by its unique values before anyone tries again.
            found = await self._taken(obj, body, me=None)
            if found is None:
                raise
            e.log.info("customer_create_found", customer=found["id"])
            return found

    async def _taken(
        self, obj: ObjectSpec, body: Mapping[str, Any], *, me: str | None
    ) -> dict[str, Any] | None:
        """For each unique field in ``body``: the customers already holding its value. One that
        is not ``me`` is a conflict (422), unless this is a create (``me`` None) and it holds
        every value sent: then it is the customer being created, and it is returned."""
        unique = [
            (f, str(body[f.name]).strip())
            for f in obj.fields
            if f.unique and isinstance(body.get(f.name), str | int) and str(body[f.name]).strip()
        ]
        conflicts: list[FieldError] = []
        for f, value in unique:
            for record in await self.engine.find_records(obj, [(f, value)], f.match):
                found = fm.to_object(obj, record, self.engine.base_ctx)
                if found["id"] == me:
                    continue
                if me is None and not fm.not_kept(
                    obj.fields, body, found, codecs=self.engine.codecs
                ):
                    return found
                conflicts.append(_taken(f, value))
                break
        if conflicts:
            raise ValidationFailed("Some values belong to another customer.", fields=conflicts)
        return None


def _taken(f: FieldSpec, value: str) -> FieldError:
    return FieldError(f.name, f"{f.label}: {value} is already being used by another customer.")
