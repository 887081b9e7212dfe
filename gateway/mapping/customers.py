"""Writing customers once and whole (docs/behaviour.md §1.4):

- a value of a `unique` field (an email, a handle) that another customer holds is refused
  (422) before anything is written, so an update is never half applied;
- a create is not abandoned when its answer comes late: identical creates share one task,
  creates of one body (through any process) are held one at a time, and the create runs on
  past the caller's deadline for its grace, its call to the CRM waiting for the answer rather
  than give up at one attempt's cap. What it made is remembered under the body's digest, so
  the repeat finds it;
- its outcome is remembered as unknown before the call goes out, so that a process that dies
  mid-create leaves that behind too; when it stays unknown (the answer lost, the process
  gone), the create and its repeats look for what it may have made: by its unique fields,
  else by every value sent among the records made since it began. While the CRM may yet
  show it, a repeat that finds nothing is refused (503) rather than make it twice;
- a create identical to a customer that exists (every value sent, a unique one among them) is
  that customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from gateway.errors import FieldError, NotFound, ValidationFailed
from gateway.mapping import fields as fm
from gateway.mapping import interactions as im
from gateway.mapping import lost
from gateway.mapping.model import FieldSpec, ObjectSpec
from gateway.mapping.once import Writes, lease, past_deadline

REMEMBER_SECONDS = 15 * 60.0


class CustomerWrites(Writes):
    """Customer creates and updates, made once and whole (see the module)."""

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
            obj = await self.engine.object("customer")
            changes = self.engine.changes(obj, body)  # 400 and 422 before anything else
            # Waited for within the caller's budget (then 504, nothing written); held as long
            # as the create may run on past it.
            async with self.locks.hold(f"customer:{key}", lease(grace)):
                return await past_deadline(lambda: self._create(obj, body, changes, key), grace)

        return await self._inflight.run(key, seen_through)

    async def _create(
        self, obj: ObjectSpec, body: Mapping[str, Any], changes: dict[str, Any], key: str
    ) -> dict[str, Any]:
        e, name = self.engine, f"customer:{key}"
        seen = await self.recall.get(name)
        seen = seen if isinstance(seen, dict) else {}  # another process's JSON: anything
        made: dict[str, Any] | None = None
        unknown = bool(seen.get("unknown"))
        if seen.get("id"):
            try:
                made = await e.find_customer(str(seen["id"]))
            except NotFound:
                await self.recall.forget(name)  # deleted since: make it anew
        elif unknown:
            made = await self._looked_for(obj, body, seen)
        if made is None and not unknown:
            made = await self._taken(obj, body, me=None)
            if made is not None:
                e.log.info("customer_create_repeated", customer=made["id"])
        if made is None:
            made = await self._make(obj, body, changes, name)
        await self.recall.put(name, {"id": made["id"]}, REMEMBER_SECONDS)
        return e.verified(obj, body, made)

    async def _make(
        self, obj: ObjectSpec, body: Mapping[str, Any], changes: dict[str, Any], name: str
    ) -> dict[str, Any]:
        e, started = self.engine, self.clock()
        # Written ahead (a process killed mid-call leaves it): until the hold on this body may
        # last, and the CRM may not show what was made for its `settle_seconds` more.
        ahead = lost.entry(started, started + lease() + obj.settle_seconds)
        try:
            return await lost.written_ahead(
                self.recall,
                name,
                ahead,
                REMEMBER_SECONDS,
                lambda: e.run_one("create_customer", obj, {"changes": changes}),
            )
        except lost.UNKNOWN as exc:
            if not lost.unknown(exc):
                raise
            # Made or not? Remembered first, so that a repeat looks too; then looked for.
            entry = lost.entry(started, self.clock() + obj.settle_seconds)
            await self.recall.put(name, entry, REMEMBER_SECONDS)
            found = await self._made_since(obj, body, started)
            if found is None:
                raise
            e.log.info("customer_create_found", customer=found["id"])
            return found

    async def _looked_for(
        self, obj: ObjectSpec, body: Mapping[str, Any], seen: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The customer an earlier create of this body, whose answer was lost, made; None when
        there is none and the CRM's search would show it by now. While it may not yet, the
        repeat is refused: making it again could make it twice."""
        found = await self._made_since(obj, body, lost.number(seen.get("started")))
        if found is not None:
            self.engine.log.info("customer_create_found", customer=found["id"])
            return found
        lost.refuse_while_pending(seen, self.clock())
        return None

    async def _made_since(
        self, obj: ObjectSpec, body: Mapping[str, Any], started: float
    ) -> dict[str, Any] | None:
        """The customer holding every value of ``body``, found by a unique value when it has
        one, else among those the search by its searchable values finds that were made since
        ``started`` (when the CRM says when it made them)."""
        e = self.engine
        same = await self._taken(obj, body, me=None)
        if same is not None or _unique(obj, body):
            return same
        pairs = [(f, v) for f, v in _given(obj, body) if f.searchable and f.search]
        if not pairs:
            return None
        for record in await e.find_records(obj, pairs):
            if obj.created_at is not None and not lost.made_since(obj.created_at(record), started):
                continue
            found = fm.to_object(obj, record, e.base_ctx)
            if not fm.not_kept(_as_written(obj), body, found, codecs=e.codecs):
                return found
        return None

    async def _taken(
        self, obj: ObjectSpec, body: Mapping[str, Any], *, me: str | None
    ) -> dict[str, Any] | None:
        """For each unique field in ``body``: the customers already holding its value. One that
        is not ``me`` is a conflict (422), unless this is a create (``me`` None) and it holds
        every value sent: then it is the customer being created, and it is returned."""
        conflicts: list[FieldError] = []
        for f, value in _unique(obj, body):
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


def _given(obj: ObjectSpec, body: Mapping[str, Any]) -> list[tuple[FieldSpec, str]]:
    """The fields of ``body`` with a value of text or a number, and that value."""
    return [
        (f, str(value).strip())
        for f in obj.fields
        if isinstance(value := body.get(f.name), str | int)
        and not isinstance(value, bool)
        and str(value).strip()
    ]


def _as_written(obj: ObjectSpec) -> list[FieldSpec]:
    """The fields, each compared as a create writes it: a name word for word (a search finds
    it by the first letters of its words, and "Jo" must not find "John Smith")."""
    return [replace(f, match="exact") if f.match == "words" else f for f in obj.fields]


def _unique(obj: ObjectSpec, body: Mapping[str, Any]) -> list[tuple[FieldSpec, str]]:
    return [(f, value) for f, value in _given(obj, body) if f.unique]


def _taken(f: FieldSpec, value: str) -> FieldError:
    return FieldError(f.name, f"{f.label}: {value} is already being used by another customer.")
