"""The sandbox's data: users, identities, organizations, custom fields, tickets and comments,
with Zendesk's validation rules and error envelopes (docs/behaviour.md §3)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.sandbox.rules import (
    ZendeskError,
    custom_value_problem,
    invalid,
    later,
    not_found,
    now,
    stored,
)

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITIES = ("urgent", "high", "normal", "low")
TYPES = ("problem", "incident", "question", "task")
IDEMPOTENCY_TTL = 2 * 3600.0
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


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
    indexed_at: dict[int, float] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, float, dict[str, Any]]] = field(default_factory=dict)
    # Zendesk numbers each kind of record on its own.
    last_ids: dict[str, int] = field(default_factory=dict)

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
        if kind in ("email", "twitter", "facebook") and any(
            i["type"] == kind and str(i["value"]).casefold() == str(value).casefold()
            for i in self.identities.values()
        ):
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
        self.indexed_at[user_id] = time.monotonic() + self.index_lag
        return ident

    def _check_user(self, data: dict[str, Any], current: dict[str, Any] | None) -> None:
        details: dict[str, list[dict[str, Any]]] = {}
        name = data.get("name", current["name"] if current else None)
        if not name or not str(name).strip():
            details["name"] = [{"description": "Name: cannot be blank", "error": "BlankValue"}]
        email = data.get("email")
        if email is not None and not _EMAIL.match(str(email)):
            details["email"] = [
                {
                    "description": f"Email: {email} is not properly formatted",
                    "error": "InvalidFormat",
                }
            ]
        elif email and any(
            i["type"] == "email"
            and i["value"].casefold() == str(email).casefold()
            and (current is None or i["user_id"] != current["id"])
            for i in self.identities.values()
        ):
            details["email"] = [
                {
                    "description": f"Email: {email} is already being used by another user",
                    "error": "DuplicateValue",
                }
            ]
        for key, value in (data.get("user_fields") or {}).items():
            spec = next((f for f in self.user_fields if f["key"] == key), None)
            if spec is None:
                continue  # Zendesk ignores unknown keys
            problem = custom_value_problem(spec, value)
            if problem:
                details.setdefault("base", []).append(
                    {
                        "description": f"{spec['title']}: {problem}",
                        "error": "InvalidValue",
                        "field_key": key,
                    }
                )
        if details:
            raise invalid(details)

    def create_user(self, data: dict[str, Any]) -> dict[str, Any]:
        self._check_user(data, None)
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
        self._check_user(data, user)
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
        self.indexed_at[user["id"]] = time.monotonic() + self.index_lag

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
        return time.monotonic() >= self.indexed_at.get(user_id, 0.0)

    # -- tickets ---------------------------------------------------------------------------

    def ticket(self, id: int) -> dict[str, Any]:
        if id not in self.tickets:
            raise not_found()
        return self.tickets[id]

    def _check_ticket(self, data: dict[str, Any], current: dict[str, Any] | None) -> None:
        details: dict[str, list[dict[str, Any]]] = {}
        if current and current["status"] == "closed":
            raise invalid(
                {
                    "status": [
                        {
                            "description": "Status: closed prevents ticket update",
                            "error": "InvalidValue",
                        }
                    ]
                }
            )
        for key, allowed in (("status", STATUSES), ("priority", PRIORITIES), ("type", TYPES)):
            if data.get(key) is not None and data[key] not in allowed:
                details[key] = [
                    {
                        "description": f"{key.title()}: {data[key]} is not valid",
                        "error": "InvalidValue",
                    }
                ]
        if current is None:
            if data.get("requester_id") not in self.users:
                details["requester"] = [
                    {"description": "Requester: cannot be blank", "error": "BlankValue"}
                ]
            comment = data.get("comment") or {}
            if not str(comment.get("body") or comment.get("html_body") or "").strip():
                details["base"] = [
                    {"description": "Comment: cannot be blank", "error": "BlankValue"}
                ]
        for entry in data.get("custom_fields") or []:
            spec = next((f for f in self.ticket_fields if f["id"] == entry.get("id")), None)
            if spec is None:
                continue
            problem = custom_value_problem(spec, entry.get("value"))
            if problem:
                details.setdefault("base", []).append(
                    {
                        "description": f"{spec['title']}: {problem}",
                        "error": "InvalidValue",
                        "field_key": spec["id"],
                    }
                )
        if details:
            raise invalid(details)

    def create_ticket(
        self, data: dict[str, Any], key: str | None
    ) -> tuple[dict[str, Any], str | None]:
        """The ticket response and the idempotency lookup result (hit, miss or None)."""
        if key is not None:
            digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
            seen = self.idempotency.get(key)
            if seen and seen[1] > time.monotonic():
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
        self._check_ticket(data, None)
        tid, stamp = self.new_id("tickets"), now()
        comment = data["comment"]
        ticket = {
            "id": tid,
            "url": self.url("tickets", tid),
            "subject": data.get("subject") or "",
            "raw_subject": data.get("subject") or "",
            "description": comment.get("body", ""),
            "status": data.get("status") or "new",
            "priority": data.get("priority"),
            "type": data.get("type"),
            "requester_id": data["requester_id"],
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
        self._apply_ticket(ticket, data)
        body = {"ticket": ticket, "audit": self._audit(tid)}
        if key is not None:
            self.idempotency[key] = (digest, time.monotonic() + IDEMPOTENCY_TTL, body)
        return body, "miss" if key is not None else None

    def update_ticket(self, id: int, data: dict[str, Any]) -> dict[str, Any]:
        ticket = self.ticket(id)
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
        self._check_ticket(data, ticket)
        self._apply_ticket(ticket, data)
        ticket["updated_at"] = later(ticket["updated_at"])
        return {"ticket": ticket, "audit": self._audit(id)}

    def _apply_ticket(self, ticket: dict[str, Any], data: dict[str, Any]) -> None:
        for key in ("subject", "status", "priority", "type", "tags", "external_id"):
            if key in data:
                ticket[key] = data[key]
        for entry in data.get("custom_fields") or []:
            for current in ticket["custom_fields"]:
                if current["id"] == entry.get("id"):
                    current["value"] = stored(entry.get("value"))
        comment = data.get("comment")
        if comment and (comment.get("body") or comment.get("html_body")):
            body = str(comment.get("body") or comment.get("html_body"))[:65536]
            public = comment.get("public", ticket["is_public"])
            cid = self.new_id("comments")
            self.comments[ticket["id"]].append(
                {
                    "id": cid,
                    "type": "Comment",
                    "author_id": ticket["requester_id"],
                    "body": body,
                    "html_body": f"<p>{body}</p>",
                    "plain_body": body,
                    "public": bool(public),
                    "attachments": [],
                    "audit_id": cid,
                    "via": {"channel": "api"},
                    "metadata": {"system": {}, "custom": {}},
                    "created_at": now(),
                }
            )

    def _audit(self, ticket_id: int) -> dict[str, Any]:
        return {
            "id": self.new_id("audits"),
            "ticket_id": ticket_id,
            "created_at": now(),
            "events": [],
        }
