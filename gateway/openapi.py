"""`GET /openapi.json`: both APIs exactly as this gateway serves them, written from the table of
operations (gateway.api) the app is wired from. OpenAPI 3.1, whose schemas are JSON Schema: the
very schemas request bodies are validated against."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.body import Schema
from gateway.operation import Operation, Realm

ERROR: Schema = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string", "description": "shown to the agent; has the tracking id"},
        "fields": {
            "type": "array",
            "description": "on 400 and 422: each field's problem, by the caller's name of it",
            "items": {
                "type": "object",
                "required": ["name", "errorMessage"],
                "properties": {"name": {"type": "string"}, "errorMessage": {"type": "string"}},
            },
        },
    },
}
# A key in a header or in the URL Hybrid Chat is configured with (docs/behaviour.md §2.4).
SECURITY: dict[Realm, list[dict[str, list[str]]]] = {
    "khoros": [{"apiKey": []}],
    "hybrid_chat": [{"expertflowKey": []}, {"expertflowQuery": []}],
    "admin": [{"adminKey": []}],
    "ops": [],
}


def document(operations: Iterable[Operation], prefixes: Mapping[Realm, str]) -> dict[str, Any]:
    """The document of ``operations``, each served under its realm's prefix."""
    paths: dict[str, Any] = {}
    for op in operations:
        path = paths.setdefault(prefixes.get(op.realm, "") + op.path, {})
        path[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "crm-gateway",
            "version": "1",
            "description": "Khoros Custom CRM API and Expertflow priority routing",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "adminKey": {"type": "http", "scheme": "bearer"},
                "expertflowKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "expertflowQuery": {"type": "apiKey", "in": "query", "name": "api_key"},
            },
        },
    }


def _operation(op: Operation) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {str(op.status): _answer("success", op.response)}
    if op.empty is not None:
        responses[str(op.empty)] = {"description": "nothing to answer"}
    for status, schema in op.answers.items():
        responses[str(status)] = _answer(f"answer {status}", schema)
    for status in op.statuses():
        responses.setdefault(str(status), {"description": f"error {status}", **error})
    out: dict[str, Any] = {"operationId": op.name, "summary": op.summary, "responses": responses}
    if SECURITY[op.realm]:
        out["security"] = SECURITY[op.realm]
    parameters = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in op.params
    ] + [
        # A query parameter with a default may be left out.
        {"name": n, "in": "query", "required": "default" not in s, "schema": s}
        for n, s in op.query.items()
    ]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        content = {"application/json": {"schema": op.body.schema}}
        out["requestBody"] = {"required": op.body.required, "content": content}
    return out


def _answer(description: str, schema: Schema | None) -> dict[str, Any]:
    if schema is None:
        return {"description": description, "content": {"text/plain": {}}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}
