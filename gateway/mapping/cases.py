"""Writing cases exactly once (docs/behaviour.md §1.7):

- one writer per case: updates of a case run one at a time (keyed locks), each
  reading the record after the one before wrote, so an interaction on it is not added again;
- creates: identical creates in flight share one; creates of one identity (customer, title,
  interactions; without interactions, every value) run one at a time, through any process,
  each running on past its caller's deadline for its grace; a repeat finds the case the first
  made (remembered, or the upstream's idempotency key), and a repeat with other values applies
  them to it; a case closed since is not changed or reopened by a repeat (409); a create
  without an idempotency key is remembered as of unknown outcome before its call goes out,
  so that a process that dies mid-create leaves that behind for the repeat;
- interactions past what one write may record are added by further writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import (
    CaseClosed,
    FieldError,
    IdempotencyMismatch,
    MappingFailed,
    NotFound,
    ValidationFailed,
)
from gateway.mapping import fields as fm
from gateway.mapping import interactions as im
from gateway.mapping import lost
from gateway.mapping.engine import Engine
from gateway.mapping.once import Writes, lease, past_deadline

# As long as the shipped upstreams keep an idempotency key (docs/behaviour.md §1.7).
REMEMBER_SECONDS = 2 * 3600.0


def keyed(engine: Engine, operation: str, given: Mapping[str, Any]) -> bool:
    """Does every write of ``operation`` send an `Idempotency-Key` header, so that its repeat
    is answered with what the first made? A mapping whose headers cannot be read without the
    steps' answers counts as not keyed (the safer side)."""
    ctx = {**engine.base_ctx, **given}
    writes = [
        s.request
        for s in engine.mapping.operations[operation].steps
        if s.request.method != "GET" and not s.request.idempotent
    ]
    try:
        sent = [{k.lower(): v for k, v in w.headers(ctx).items()} for w in writes]
    except MappingFailed:
        return False
    return bool(sent) and all(h.get("idempotency-key") for h in sent)


class CaseWrites(Writes):
    """Case creates and updates, each made once (see the module)."""

    # -- updates ---------------------------------------------------------------------------

    async def update(self, id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        e, spec = self.engine, self.engine.mapping.interactions
        obj = await e.object("case")
        changes = e.changes(obj, im.custom(body))
        writes = im.batches(spec, im.prepare(spec, body.get("interactions") or []))
        seen_body = im.clean(dict(body), spec.marker_prefix)
        result: dict[str, Any] = {}
        async with self.locks.hold(f"case:{id}", lease()):
            for n, batch in enumerate(writes):
                given = {
                    "id": id,
                    "body": seen_body if n == 0 else im.custom(seen_body),
                    "changes": changes if n == 0 else {},
                    **im.context(spec, batch),
                }
                result = await e.run_one("update_case", obj, given)
        moved_to = body.get("customerId")
        if moved_to and result.get("customerId") != str(moved_to):
            raise ValidationFailed(
                "The CRM did not move the case.",
                fields=[FieldError("customerId", "The case was not moved to this customer.")],
            )
        return e.verified(obj, im.custom(body), result)

    # -- creates ---------------------------------------------------------------------------

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Identical creates in flight at once share one, which sees its writes through."""
        key, grace = im.idempotency_key(body), self.grace_seconds

        async def seen_through() -> dict[str, Any]:
            # Waited for within the caller's budget (then 504, nothing written); held as long
            # as the create may run on past it.
            async with self.locks.hold(f"create:{key}", lease(grace)):
                return await past_deadline(lambda: self._create(body, key), grace)

        return await self._inflight.run(im.digest(body), seen_through)

    async def _create(self, body: Mapping[str, Any], key: str) -> dict[str, Any]:
        digest = im.digest(body)
        seen = await self.recall.get(f"case:{key}")
        if isinstance(seen, dict) and seen.get("unknown"):
            # An earlier create of this case lost its answer: did it make the case? While the
            # CRM may yet show it (it may still be finishing the write), not made again.
            found = await self._existing(body, self._writes(body)[0], seen.get("started"))
            if found is None:
                lost.refuse_while_pending(seen, self.clock())
            seen = {"id": found["id"], "digest": ""} if found else None
        case = await self._again(seen, body, digest) if isinstance(seen, dict) else None
        if case is None:
            case = await self._new(body, key, digest)
        await self._remember(key, case["id"], digest)
        return case

    async def _remember(self, key: str, case_id: str, digest: str) -> None:
        entry = {"id": case_id, "digest": digest}
        await self.recall.put(f"case:{key}", entry, REMEMBER_SECONDS)

    async def _again(
        self, seen: dict[str, Any], body: Mapping[str, Any], digest: str
    ) -> dict[str, Any] | None:
        """A repeat of a create this gateway made: the same case, with the repeat's values;
        refused when the case is closed since."""
        try:
            case = self._open(await self.engine.find_case(str(seen["id"])))
            if seen.get("digest") == digest and len(self._writes(body)) == 1:
                return case
            return await self._apply(case["id"], body, changed=seen.get("digest") != digest)
        except NotFound:
            return None  # deleted since: make it anew

    def _open(self, case: dict[str, Any]) -> dict[str, Any]:
        """The case an earlier create made, unless it is closed: a repeat does not change or
        reopen a closed case, which may have been dealt with (docs/behaviour.md §1.7)."""
        if case.get("status") == "closed":
            raise CaseClosed(
                f"Case {case['id']}, which this create made before, is closed: a repeat does not"
                " change or reopen it. Reopen it in the CRM, or create a case with another title.",
                detail=f"a repeated create found case {case['id']} closed",
            )
        return case

    async def _apply(self, id: str, body: Mapping[str, Any], *, changed: bool) -> dict[str, Any]:
        if changed:
            self.engine.log.info("case_create_repeated", case=id, applied=sorted(im.custom(body)))
        update = {**(im.custom(body) if changed else {}), "interactions": body.get("interactions")}
        return await self.update(id, update)

    def _writes(self, body: Mapping[str, Any]) -> list[list[im.Prepared]]:
        spec = self.engine.mapping.interactions
        return im.batches(spec, im.prepare(spec, body.get("interactions") or []))

    async def _new(self, body: Mapping[str, Any], key: str, digest: str) -> dict[str, Any]:
        e, spec = self.engine, self.engine.mapping.interactions
        obj = await e.object("case")
        writes = self._writes(body)
        given = {
            "body": im.clean(dict(body), spec.marker_prefix),
            "changes": e.changes(obj, im.custom(body)),
            "idempotency_key": key,
            **im.context(spec, writes[0]),
        }
        started = self.clock()

        async def sent() -> dict[str, Any]:
            return await e.run_one("create_case", obj, given)

        try:
            if keyed(e, "create_case", given):
                raw = await sent()  # its repeat's key is answered with what it made
            else:  # written ahead: a process killed mid-call leaves it (as for a customer)
                ahead = lost.entry(started, started + lease() + obj.settle_seconds)
                raw = await lost.written_ahead(
                    self.recall, f"case:{key}", ahead, REMEMBER_SECONDS, sent
                )
            made = e.verified(obj, im.custom(body), raw)
        except lost.UNKNOWN as failed:
            if isinstance(failed, IdempotencyMismatch):
                return await self._mismatch(body, writes[0])
            if not lost.unknown(failed):
                raise
            # Made or not? Look before anyone tries again, and let the repeat look too.
            entry = lost.entry(started, self.clock() + obj.settle_seconds)
            await self.recall.put(f"case:{key}", entry, REMEMBER_SECONDS)
            existing = await self._existing(body, writes[0], started)
            if existing is None:
                raise
            e.log.info("case_create_found", case=existing["id"])
            made = existing
        if len(writes) > 1:
            # The first write carried what it could record; the rest follow, each once.
            await self._remember(key, made["id"], digest)
            made = await self.update(made["id"], {"interactions": body.get("interactions")})
        return made

    async def _mismatch(self, body: Mapping[str, Any], first: list[im.Prepared]) -> dict[str, Any]:
        """The upstream made this case for another request with the same identity."""
        existing = await self._existing(body, first, None)
        if existing is None:
            raise ValidationFailed(
                "This case was just created with other details; open it and edit it instead."
            )
        self.engine.log.warning("idempotency_mismatch", case=existing["id"])
        return await self._apply(self._open(existing)["id"], body, changed=True)

    async def _existing(
        self, body: Mapping[str, Any], first: list[im.Prepared], started: Any
    ) -> dict[str, Any] | None:
        """The customer's case with this title whose first comment holds the first write's
        markers (newest first). Without interactions nothing marks it: the case holding every
        value sent, made since the create began at ``started`` (seconds since the epoch)."""
        e = self.engine
        obj = await e.object("case")
        for case in await e.find_cases(str(body["customerId"])):
            text = str(case.get("description", ""))
            if case.get("title") != body.get("title") or not all(p.marker in text for p in first):
                continue
            if first or (
                isinstance(started, int | float)
                and lost.made_since(case.get("created"), started)
                and not fm.not_kept(obj.fields, im.custom(body), case, codecs=e.codecs)
            ):
                return case
        return None
