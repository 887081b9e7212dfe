"""The API the gateway serves, one table: every operation declared once, with its method, path,
handler, realm (who may call it), budget, the JSON schemas of what it takes and gives, and its
statuses. The app is wired from it (gateway.app), the middleware takes each request's realm and
budget from it, request bodies are validated against its schemas (gateway.body), and
/openapi.json, `crm-gateway explain`, the mapping's operation names (gateway.mapping.spec) and
the README's test all read it. A new operation is a row here, its handler, and (when the mapping
runs it) its entry in the mappings."""

from __future__ import annotations

from typing import Any

from gateway import admin, expertflow, khoros, openapi, ops
from gateway.body import MAX_ITEMS, Body, Schema
from gateway.cache import Caches
from gateway.mapping.field_types import FIELD_TYPES, value_schema
from gateway.operation import Args, Operation, prefixes
from gateway.runtime import Runtime

# -- what callers send and get ---------------------------------------------------------------------

TEXT: Schema = {"type": "string"}
REQUIRED_TEXT: Schema = {"type": "string", "pattern": r"\S"}
MAYBE_TEXT: Schema = {"type": ["string", "null"]}
TEXTS: Schema = {"type": ["array", "null"], "items": TEXT}


def listed(items: Schema) -> Schema:
    return {"type": "array", "items": items}


# The value of a field the mapping maps: of one of the field types (gateway.mapping.field_types).
VALUE = value_schema()
CUSTOMER: Schema = {
    "type": "object",
    "required": ["id", "url", "uri"],
    "properties": {"id": TEXT, "url": TEXT, "uri": TEXT},
    "additionalProperties": VALUE,
}
# An interaction the gateway wrote on a case, read back (docs/behaviour.md §1.5): Khoros's
# Interaction object, every key present ("" where the CRM holds nothing).
WRITTEN_INTERACTION: Schema = {
    "type": "object",
    "required": ["created", "body", "linkUrl", "serviceId", "service", "contentType", "author"],
    "properties": {
        **dict.fromkeys(("created", "body", "linkUrl", "serviceId", "service"), TEXT),
        "contentType": TEXT,
        "author": {
            "type": "object",
            "required": ["service", "serviceId", "handle", "name", "brandOwned"],
            "properties": {
                **dict.fromkeys(("service", "serviceId", "handle", "name"), TEXT),
                "brandOwned": {"type": "boolean"},
            },
        },
    },
}
CASE: Schema = {
    "type": "object",
    "required": ["id", "number", "customerId", "title", "description", "url", "linkUrl"],
    "properties": {
        **dict.fromkeys(("id", "number", "customerId", "title", "description"), TEXT),
        **dict.fromkeys(("url", "linkUrl", "created", "lastUpdated"), TEXT),
        "status": {"type": "string", "enum": ["open", "closed"]},
        "interactions": {
            **listed(WRITTEN_INTERACTION),
            "description": "on a single case only (GET /case/{id}), oldest first",
        },
    },
    "additionalProperties": VALUE,
}
# GET /case/{id}: the case with the interactions written on it.
ONE_CASE: Schema = {**CASE, "required": [*CASE["required"], "interactions"]}
META: Schema = {
    "type": "object",
    "required": ["name", "fields"],
    "properties": {
        "name": {"enum": ["customer", "case"]},
        "fields": listed(
            {
                "type": "object",
                "required": ["name", "label", "type", "searchable"],
                "properties": {
                    "name": TEXT,
                    "label": TEXT,
                    "type": {"enum": list(FIELD_TYPES)},
                    "searchable": {"type": "boolean"},
                    "listValues": listed({"type": "object", "required": ["name", "value"]}),
                },
            }
        ),
    },
}
# A body of the object's fields by name, as meta lists them: which are known, writable and of
# the right type is the mapping's to say (gateway.mapping.fields), so it checks them.
FIELDS: Schema = {"type": "object", "description": "the object's fields, as meta lists them"}
BESTMATCH: Schema = {
    "type": "object",
    "description": "every key optional; unknown keys are ignored",
    "properties": {
        **dict.fromkeys(("displayName", "screenName", "description", "profileUrl"), MAYBE_TEXT),
        "email": MAYBE_TEXT,
        # Not in Khoros's reference: the network of `screenName`, when a caller sends it.
        "service": MAYBE_TEXT,
        "author": {
            "type": ["object", "null"],
            "properties": {"service": MAYBE_TEXT, "handle": MAYBE_TEXT},
        },
        **dict.fromkeys(("phoneNumbers", "orderNumbers", "caseNumbers"), TEXTS),
        "addresses": {"type": ["array", "null"], "items": {"type": "object"}},
        "accountNumbers": {"type": ["string", "array", "null"], "items": TEXT},
    },
}
INTERACTION: Schema = {
    "type": "object",
    "required": ["created", "body", "serviceId", "service", "contentType"],
    "properties": {
        **dict.fromkeys(("created", "serviceId", "service", "contentType"), REQUIRED_TEXT),
        "body": {"type": "string", "description": "empty for a photo or a video without text"},
        "linkUrl": MAYBE_TEXT,
        "author": {"type": ["object", "null"]},
    },
}
INTERACTIONS: Schema = {"type": ["array", "null"], "items": INTERACTION, "maxItems": MAX_ITEMS}
# `customId`: Khoros's reference schema has that typo for customerId (docs/behaviour.md §1.7).
CASE_ALIASES = {"customId": "customerId"}
CASE_CREATE: Schema = {
    "type": "object",
    "description": "and the case's fields, as meta lists them",
    "required": ["customerId", "title"],
    "properties": {
        "customerId": {"type": ["string", "integer"], "pattern": r"\S"},
        "title": REQUIRED_TEXT,
        "interactions": INTERACTIONS,
    },
}
CASE_UPDATE: Schema = {
    "type": "object",
    "description": "the case's fields to change; a customerId moves the case",
    "properties": {
        "customerId": {"type": ["string", "integer", "null"]},
        "interactions": INTERACTIONS,
    },
}
HC_CUSTOMER: Schema = {
    "type": "object",
    "required": ["_id", "first_name", "last_name", "email", "phone1", "labels", "__v"],
    "properties": {
        **dict.fromkeys(("_id", "first_name", "last_name", "email", "created_by"), TEXT),
        **{f"phone{i}": TEXT for i in range(1, 6)},
        **dict.fromkeys(("updated_by", "createdAt", "updatedAt"), TEXT),
        "labels": listed(TEXT),
        "__v": {"type": "integer"},
    },
}
LABEL: Schema = {
    "type": "object",
    "required": ["_id", "name", "color_code"],
    "properties": {
        **dict.fromkeys(("_id", "name", "color_code", "created_by", "updated_by"), TEXT),
        **dict.fromkeys(("createdAt", "updatedAt"), TEXT),
        "__v": {"type": "integer"},
    },
}
CACHE_NAMES: Schema = {"enum": list(Caches.NAMES)}
PURGE: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"caches": {"type": ["array", "null"], "items": CACHE_NAMES}},
}
PURGED: Schema = {
    "type": "object",
    "required": ["purged", "processes"],
    "properties": {"purged": listed(CACHE_NAMES), "processes": {"type": "integer"}},
}
READINESS: Schema = {
    "type": "object",
    "required": ["status", "state", "shared_state", "upstream", "mapping", "circuit"],
    "properties": {
        "status": {"enum": ["ready", "not ready"]},
        "reason": {
            "type": "string",
            "description": "why not: Draining, Starting, SharedStateUnavailable, or the CRM's "
            "error (with ?upstream=1)",
        },
        "detail": TEXT,
        "state": {"enum": ["starting", "serving", "draining"]},
        "shared_state": {"enum": ["none", "up", "down"], "description": "Redis"},
        "upstream": {"type": "string", "description": "the mapping's name"},
        "mapping": {"type": "string", "description": "the mapping's file"},
        "crm": {"enum": ["ready", "not ready"], "description": "with ?upstream=1 only"},
        "note": TEXT,
        "circuit": {"enum": ["closed", "open", "half_open"]},
    },
}
ASK_UPSTREAM: Schema = {
    "enum": sorted(ops.ASK_UPSTREAM),
    "default": "0",
    "description": "1: the CRM must answer the mapping's readiness request too",
}
PHONE_QUERY: Schema = {"type": "string", "pattern": "^phone:", "description": "phone:<number>"}


async def openapi_document(live: Runtime, args: Args) -> Any:
    return openapi.document(OPERATIONS, prefixes(live.config))


# -- the table -------------------------------------------------------------------------------------

OPERATIONS: tuple[Operation, ...] = (
    # Khoros Marketing's Custom CRM API (docs/behaviour.md §1.1), under server.base_path.
    Operation(
        "meta", "GET", "/meta/object/{type}", khoros.meta, "khoros",
        response=META, errors=(404,), budget="meta", summary="define object structure",
    ),
    Operation(
        "search_customers", "POST", "/customers", khoros.search_customers, "khoros",
        response=listed(CUSTOMER), errors=(400,), body=Body(FIELDS), empty=204,
        mapped="records", summary="search customers: every field given matches",
    ),
    Operation(
        "bestmatch", "POST", "/customer/bestmatch", khoros.bestmatch, "khoros",
        response=listed(CUSTOMER), errors=(400,), body=Body(BESTMATCH),
        mapped="strategies", summary="the customers an author may be, best first",
    ),
    Operation(
        "create_customer", "POST", "/customer", khoros.create_customer, "khoros",
        response=CUSTOMER, status=201, errors=(400, 422),
        body=Body({**FIELDS, "minProperties": 1}), mapped="record", summary="create a customer",
    ),
    Operation(
        "find_customer", "GET", "/customer/{id}", khoros.find_customer, "khoros",
        response=CUSTOMER, errors=(404,), mapped="record", summary="find a customer",
    ),
    Operation(
        "update_customer", "PATCH", "/customer/{id}", khoros.update_customer, "khoros",
        response=CUSTOMER, status=201, errors=(400, 404, 422), body=Body(FIELDS),
        mapped="record", summary="update a customer (201, as Khoros's reference says)",
    ),
    Operation(
        "find_cases", "GET", "/customer/{id}/cases", khoros.find_cases, "khoros",
        response=listed(CASE), errors=(404,), mapped="records",
        summary="the customer's cases, newest first",
    ),
    Operation(
        "create_case", "POST", "/case", khoros.create_case, "khoros",
        response=CASE, status=201, errors=(400, 404, 409, 422),
        body=Body(CASE_CREATE, aliases=CASE_ALIASES), mapped="record",
        summary="create a case with the interactions that led to it, once",
    ),
    Operation(
        "find_case", "GET", "/case/{id}", khoros.find_case, "khoros",
        response=ONE_CASE, errors=(404,), mapped="record",
        summary="find a case, with the interactions written on it",
    ),
    Operation(
        "update_case", "PATCH", "/case/{id}", khoros.update_case, "khoros",
        response=CASE, errors=(400, 404, 422), body=Body(CASE_UPDATE, aliases=CASE_ALIASES),
        mapped="record", summary="update a case; new interactions are added once each",
    ),
    # Expertflow Hybrid Chat's priority routing (docs/behaviour.md §2), under
    # expertflow.path_prefix.
    Operation(
        "customer_by_phone", "GET", "/customer", expertflow.customer_by_phone, "hybrid_chat",
        response=HC_CUSTOMER, errors=(400, 404), query={"query": PHONE_QUERY},
        summary="the customer a number belongs to",
    ),
    Operation(
        "labels", "GET", "/label", expertflow.labels, "hybrid_chat",
        response=listed(LABEL), summary="every label",
    ),
    # The operator's.
    Operation(
        "purge_caches", "POST", "/admin/cache/purge", admin.purge_caches, "admin",
        response=PURGED, errors=(400,), body=Body(PURGE, required=False, json_only=False),
        summary="empty the caches of every process of the fleet",
    ),
    Operation(
        "healthz", "GET", "/healthz", ops.healthz, "ops",
        response={"type": "object"}, budget=None, summary="the process answers",
    ),
    Operation(
        "readyz", "GET", "/readyz", ops.readyz, "ops",
        response=READINESS, answers={503: READINESS}, errors=(400,), budget=None,
        query={"upstream": ASK_UPSTREAM},
        summary="this process can serve (with ?upstream=1: and the CRM answers)",
    ),
    Operation(
        "metrics", "GET", "/metrics", ops.metrics, "ops",
        response=None, budget=None, summary="Prometheus text",
    ),
    Operation(
        "openapi", "GET", "/openapi.json", openapi_document, "ops",
        response={"type": "object"}, budget=None, summary="this document",
    ),
)  # fmt: skip

BY_NAME = {op.name: op for op in OPERATIONS}
