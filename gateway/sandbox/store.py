"""The sandbox's data: users, identities, organizations, custom fields, tickets, their
comments and audits, with Zendesk's rules (docs/behaviour.md §3, docs/sandbox.md)."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.sandbox.limits import Limits
from gateway.sandbox.rules import ZendeskError, invalid, not_found, now, stored
from gateway.sandbox.validate import check_ticket, check_user, identity_taken

IDEMPOTENCY_TTL = 2 * 3600.0
# Ticket properties whose changes an audit records as events (scalars only, as the OAS types
# an event's value).
AUDITED = ("subject", "status", "priority", "type", "requester_id")


@dataclass
class Store:
    base_url: str = "http://127.0.0.1:8081"
    index_lag: float = 0.0  # seconds before a write is visible to search, as in Zendesk
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    identities: dict[int, dict[str, Any]] = field(default_factory=dict)
    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    user_fields: list[dict[str, Any]] = field(default_factory=list)
    ticket_fields: list[dict[str, Any]] = field(default_factory=list)
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    indexed_at: dict[int, float] = field(default_factory=dict)  # users, by id
    tickets_indexed_at: dict[int, float] = field(default_factory=dict)
    audits: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, float, dict[str, Any]]] = field(default_factory=dict)
    # A test lever: False ignores `Idempotency-Key`, as a CRM without idempotency keys (RT5)
    # would, so that tests show the gateway alone makes a create happen once.
    idempotency_keys: bool = True
    # Zendesk numbers each kind of record on its own.
    last_ids: dict[str, int] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    clock: Callable[[], float] = time.monotonic  # tests move time on instead of sleeping

    def new_id(self, kind: str) -> int:
        self.last_ids[kind] = self.last_ids.get(kind, 20_000) + 1
        return self.last_ids[kind]

    def url(self, kind: str, id: int) -> str:
        return f"{self.base_url}/api/v2/{kind}/{id}.json"

    # -- users -----------------------------------------------------------------------------

    def user(self, id: int) -> dict[str, Any]:
        if id not in self.users:
            raise not_found()
        return self.users[id]

    def user_identities(self, user_id: int) -> list[dict[str, Any]]:
        return [i for i in self.identities.values() if i["user_id"] == user_id]

    def add_identity(
        self, user_id: int, kind: str, value: str, primary: bool = False
    ) -> dict[str, Any]:
        if identity_taken(self.identities.values(), kind, value, None):
            raise invalid(
                {
                    "value": [
                        {
                            "description": f"Value: {value} is already being used by another user",
                            "error": "DuplicateValue",
                        }
                    ]
                }
            )
        stamp = now()
        ident: dict[str, Any] = {
            "id": self.new_id("identities"),
            "user_id": user_id,
            "type": kind,
            "value": value,
            "primary": primary,
            "verified": kind != "email",
            "created_at": stamp,
            "updated_at": stamp,
            "url": "",
            "deliverable_state": "deliverable",
        }
        ident["url"] = f"{self.base_url}/api/v2/users/{user_id}/identities/{ident['id']}.json"
        self.identities[ident["id"]] = ident
        self.indexed_at[user_id] = self.clock() + self.index_lag
        return ident

    def create_user(self, data: dict[str, Any]) -> dict[str, Any]:
        check_user(data, None, list(self.identities.values()), self.user_fields)
        uid, stamp = self.new_id("users"), now()
        user = {
            "id": uid,
            "url": self.url("users", uid),
            "name": data["name"],
            "email": None,
            "phone": None,
            "external_id": data.get("external_id"),
            "notes": data.get("notes") or "",
            "details": data.get("details") or "",
            "role": data.get("role", "end-user"),
            "active": True,
            "verified": False,
            "organization_id": None,
            "tags": [],
            "time_zone": "UTC",
            "locale": "en-US",
            "created_at": stamp,
            "updated_at": stamp,
            "user_fields": {f["key"]: None for f in self.user_fields},
        }
        self.users[uid] = user
        self._apply_user(user, data, creating=True)
        for ident in data.get("identities") or []:
            self.add_identity(uid, ident["type"], ident["value"])
        return user

    def update_user(self, id: int, data: dict[str, Any]) -> dict[str, Any]:
        user = self.user(id)
        check_user(data, user, list(self.identities.values()), self.user_fields)
        self._apply_user(user, data, creating=False)
        user["updated_at"] = now()
        return user

    def _apply_user(self, user: dict[str, Any], data: dict[str, Any], *, creating: bool) -> None:
        for key in ("name", "external_id", "notes", "details", "role", "tags"):
            if key in data:
                user[key] = data[key]
        email = data.get("email")
        known = {i["value"].casefold() for i in self.user_identities(user["id"])}
        if email and str(email).casefold() not in known:
            # As in Zendesk: on update an email becomes a secondary identity.
            primary = creating or not user["email"]
            self.add_identity(user["id"], "email", email, primary=primary)
            if primary:
                user["email"] = data["email"]
        if "phone" in data:
            user["phone"] = data["phone"]
        if isinstance(data.get("organization"), dict) and data["organization"].get("name"):
            user["organization_id"] = self.organization_named(data["organization"]["name"])["id"]
        elif "organization_id" in data:
            user["organization_id"] = data["organization_id"]
        for key, value in (data.get("user_fields") or {}).items():
            if key in user["user_fields"]:
                user["user_fields"][key] = stored(value)
        self.indexed_at[user["id"]] = self.clock() + self.index_lag

    def organization_named(self, name: str) -> dict[str, Any]:
        for org in self.organizations.values():
            if org["name"].casefold() == name.casefold():
                return org
        oid, stamp = self.new_id("organizations"), now()
        org = {
            "id": oid,
            "url": self.url("organizations", oid),
            "name": name,
            "created_at": stamp,
            "updated_at": stamp,
            "domain_names": [],
            "tags": [],
        }
        self.organizations[oid] = org
        return org

    def search_doc(self, user: dict[str, Any]) -> dict[str, Any]:
        org = self.organizations.get(user.get("organization_id") or -1)
        return {
            **user,
            "identities": self.user_identities(user["id"]),
            "organization": org["name"] if org else None,
        }

    def searchable(self, user_id: int) -> bool:
        return self.clock() >= self.indexed_at.get(user_id, 0.0)

    def ticket_doc(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """What ticket search sees of a ticket: it, its comments' bodies, its requester."""
        comments = [c["body"] for c in self.comments.get(ticket["id"], [])]
        return {**ticket, "comments": comments, "requester": self.users.get(ticket["requester_id"])}

    def ticket_searchable(self, ticket_id: int) -> bool:
        """As users: a ticket is out of search from a write until the index has caught up."""
        return self.clock() >= self.tickets_indexed_at.get(ticket_id, 0.0)

    # -- tickets ---------------------------------------------------------------------------

    def ticket(self, id: int) -> dict[str, Any]:
        if id not in self.tickets:
            raise not_found()
        return self.tickets[id]

    def create_ticket(
        self, data: dict[str, Any], key: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """The ticket response and the idempotency lookup result (hit, miss or None)."""
        if not self.idempotency_keys:
            key = None
        if key is not None:
            digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
            seen = self.idempotency.get(key)
            if seen and seen[1] > self.clock():
                if seen[0] != digest:
                    raise ZendeskError(
                        400,
                        {
                            "error": "IdempotentRequestError",
                            "description": "Request parameters don't match the given "
                            "idempotency key",
                        },
                    )
                return seen[2], "hit"
        check_ticket(data, None, self.users, self.ticket_fields)
        tid, stamp = self.new_id("tickets"), now()
        comment = data["comment"]
        ticket = {
            "id": tid,
            "url": self.url("tickets", tid),
            "subject": "",
            "raw_subject": data.get("subject") or "",
            "description": comment.get("body", ""),
            "status": "new",
            "priority": None,
            "type": None,
            "requester_id": None,
            "submitter_id": data["requester_id"],
            "assignee_id": None,
            "organization_id": self.users[data["requester_id"]].get("organization_id"),
            "tags": list(data.get("tags") or []),
            "via": {"channel": "api"},
            "custom_fields": [
                {"id": f["id"], "value": None} for f in self.ticket_fields if f.get("removable")
            ],
            "created_at": stamp,
            "updated_at": stamp,
            "is_public": bool(comment.get("public", True)),
            "has_incidents": False,
            "collaborator_ids": [],
            "follower_ids": [],
        }
        self.tickets[tid] = ticket
        self.comments[tid] = []
        self.audits[tid] = []
        audit = self._write(ticket, data, "Create")
        body = {"ticket": copy.deepcopy(ticket), "audit": audit}
        if key is not None:
            self.idempotency[key] = (digest, self.clock() + IDEMPOTENCY_TTL, body)
        return body, "miss" if key is not None else None

    def update_ticket(self, id: int, data: dict[str, Any]) -> dict[str, Any]:
        ticket = self.ticket(id)
        # updated_stamp has whole seconds: two writes inside one second both pass, as in Zendesk.
        if (
            data.get("safe_update") is not None
            and data.get("updated_stamp") != ticket["updated_at"]
        ):
            raise ZendeskError(
                409,
                {
                    "error": "UpdateConflict",
                    "description": "The ticket was updated since updated_stamp",
                },
            )
        check_ticket(data, ticket, self.users, self.ticket_fields)
        audit = self._write(ticket, data, "Change")
        return {"ticket": copy.deepcopy(ticket), "audit": audit}

    def _write(self, ticket: dict[str, Any], data: dict[str, Any], kind: str) -> dict[str, Any]:
        """Apply a ticket write; the audit records its events and the write's `metadata`. A
        write that changes nothing makes no audit, and its metadata is lost."""
        audit_id = self.new_id("audits")
        events: list[dict[str, Any]] = []
        for key in (*AUDITED, "tags", "external_id"):
            if key == "status" and data.get(key) is None:
                continue  # a ticket always has a status
            if key in data and data[key] != ticket.get(key):
                if key in AUDITED and data[key] is not None:
                    events.append(self._event(kind, key, data[key]))
                ticket[key] = data[key]
        if "subject" in data:
            ticket["raw_subject"] = data["subject"]
        for entry in data.get("custom_fields") or []:
            for current in ticket["custom_fields"]:
                if current["id"] == entry.get("id") and current["value"] != entry.get("value"):
                    current["value"] = stored(entry.get("value"))
                    events.append(self._event(kind, str(current["id"])))
        comment = data.get("comment")
        if comment and (comment.get("body") or comment.get("html_body")):
            events.append(self._comment(ticket, comment, audit_id))
        audit = {
            "id": audit_id,
            "ticket_id": ticket["id"],
            "author_id": ticket["submitter_id"],
            "created_at": now(),
            "via": {"channel": "api"},
            "metadata": {
                "system": {"client": "crm-gateway sandbox", "ip_address": "127.0.0.1"},
                "custom": copy.deepcopy(data.get("metadata") or {}),
            },
            "events": events,
        }
        if events:
            ticket["updated_at"] = audit["created_at"]
            self.audits[ticket["id"]].append(audit)
            self.tickets_indexed_at[ticket["id"]] = self.clock() + self.index_lag
        return copy.deepcopy(audit)

    def _event(self, kind: str, field_name: str, value: Any = None) -> dict[str, Any]:
        event = {"id": self.new_id("events"), "type": kind, "field_name": field_name}
        return event if value is None else {**event, "value": value}

    def _comment(
        self, ticket: dict[str, Any], comment: dict[str, Any], audit_id: int
    ) -> dict[str, Any]:
        body = str(comment.get("body") or comment.get("html_body"))[:65536]  # Zendesk: 64 kB
        public = bool(comment.get("public", ticket["is_public"]))
        stored_comment = {
            "id": self.new_id("events"),
            "type": "Comment",
            "author_id": ticket["submitter_id"],
            "body": body,
            "html_body": f"<p>{body}</p>",
            "plain_body": body,
            "public": public,
            "attachments": [],
            "audit_id": audit_id,
            "via": {"channel": "api"},
            "metadata": {"system": {}, "custom": {}},
            "created_at": now(),
        }
        self.comments[ticket["id"]].append(stored_comment)
        event = {k: v for k, v in stored_comment.items() if k not in ("via", "metadata")}
        return copy.deepcopy(event)
