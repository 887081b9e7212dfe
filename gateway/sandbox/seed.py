"""Demo data: the records the README's curl examples use. Ids are fixed so examples work as
printed."""

from __future__ import annotations

from typing import Any

from gateway.sandbox.rules import now
from gateway.sandbox.store import Store


def _options(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [
        {"id": 900 + i, "name": n, "raw_name": n, "value": v, "position": i}
        for i, (n, v) in enumerate(pairs)
    ]


def _field(id: int, key: str | None, kind: str, title: str, **more: Any) -> dict[str, Any]:
    stamp = "2024-01-01T00:00:00Z"
    field = {
        "id": id,
        "type": kind,
        "title": title,
        "raw_title": title,
        "active": True,
        "position": id % 100,
        "description": "",
        "created_at": stamp,
        "updated_at": stamp,
        "regexp_for_validation": None,
        "url": f"/api/v2/fields/{id}.json",
        **more,
    }
    if key is not None:
        field["key"] = key
    return field


def seed(store: Store) -> Store:
    store.user_fields = [
        _field(
            101,
            "vip_level",
            "dropdown",
            "VIP level",
            custom_field_options=_options(
                ("Gold", "gold"), ("Silver", "silver"), ("Platinum", "platinum")
            ),
        ),
        _field(102, "loyalty_number", "text", "Loyalty number"),
        _field(103, "newsletter", "checkbox", "Newsletter"),
        _field(104, "birthday", "date", "Birthday"),
        _field(105, "old_segment", "text", "Old segment", active=False),
        _field(106, "phone_extension", "text", "Phone extension"),
        # Zendesk has identities for Twitter and Facebook only: Instagram handles live here.
        _field(107, "instagram", "text", "Instagram handle"),
    ]
    system = [
        ("subject", "Subject"),
        ("description", "Description"),
        ("status", "Status"),
        ("priority", "Priority"),
        ("tickettype", "Type"),
    ]
    store.ticket_fields = [
        _field(1 + i, None, kind, title, removable=False) for i, (kind, title) in enumerate(system)
    ] + [
        _field(360001, None, "text", "Order number", removable=True),
        _field(
            360002,
            None,
            "tagger",
            "Product",
            removable=True,
            custom_field_options=_options(
                ("Phone", "product_phone"),
                ("Tablet", "product_tablet"),
                ("Laptop", "product_laptop"),
            ),
        ),
        _field(360003, None, "checkbox", "Refund approved", removable=True),
    ]
    store.last_ids.update(users=1000, tickets=5000)
    jane = store.create_user(
        {
            "name": "Jane Doe",
            "email": "jane@example.com",
            "phone": "+41791234567",
            "external_id": "CRM-1001",
            "notes": "Prefers email.",
            "organization": {"name": "Acme AG"},
            "user_fields": {"vip_level": "gold", "loyalty_number": "L-7788", "newsletter": True},
            "identities": [{"type": "twitter", "value": "janedoe"}],
            "tags": ["vip", "newsletter"],
        }
    )
    store.create_user(
        {
            "name": "John Smith",
            "email": "john@example.com",
            "phone": "+15551234567",
            "identities": [{"type": "facebook", "value": "100004242"}],
            "user_fields": {"vip_level": "silver"},
        }
    )
    store.create_user(
        {
            "name": "Jane Roe",
            "email": "jane.roe@example.com",
            "user_fields": {"instagram": "jane.roe"},
        }
    )
    store.create_ticket(
        {
            "requester_id": jane["id"],
            "subject": "Order arrived damaged",
            "status": "open",
            "priority": "high",
            "custom_fields": [{"id": 360001, "value": "A-1001"}],
            "comment": {"body": "The box was crushed.", "public": True},
        },
        None,
    )
    store.create_ticket(
        {
            "requester_id": jane["id"],
            "subject": "Invoice copy",
            "status": "solved",
            "comment": {"body": "Please send a copy of my invoice.", "public": True},
        },
        None,
    )
    for ticket in store.tickets.values():
        ticket["updated_at"] = ticket["created_at"] = now()
    return store
