"""`GET /openapi.json`: both APIs exactly as this gateway serves them, built from the same route
tables the app is wired from (a test checks that every served route is described)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway import jsonio, khoros, reloading
from gateway.body import MAX_ITEMS
from gateway.cache import Caches

_ERROR = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string", "description": "shown to the agent; has the tracking id"},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "errorMessage"],
                "properties": {"name": {"type": "string"}, "errorMessage": {"type": "string"}},
            },
        },
    },
}
_VALUE = {"oneOf": [{"type": "string"}, {"type": "boolean"}]}
_CUSTOMER = {
    "type": "object",
    "required": ["id", "url", "uri"],
    "properties": {"id": {"type": "string"}, "url": {"type": "string"}, "uri": {"type": "string"}},
    "additionalProperties": _VALUE,
}
_CASE = {
    "type": "object",
    "required": ["id", "number", "customerId", "title", "description", "url", "linkUrl"],
    "properties": {
        **{k: {"type": "string"} for k in ("id", "number", "customerId", "title", "description")},
        **{k: {"type": "string"} for k in ("url", "linkUrl", "created", "lastUpdated")},
        "status": {"type": "string", "enum": ["open", "closed"]},
    },
    "additionalProperties": _VALUE,
}
_FIELDS = {"type": "object", "additionalProperties": _VALUE, "description": "fields from meta"}
_INTERACTION = {
    "type": "object",
    "required": ["created", "body", "serviceId", "service", "contentType"],
    "properties": {
        **{k: {"type": "string"} for k in ("created", "body", "serviceId", "service")},
        "contentType": {"type": "string"},
        "linkUrl": {"type": "string", "nullable": True},
        "author": {"type": "object"},
    },
}
_CASE_BODY = {
    "type": "object",
    "properties": {
        "customerId": {"type": "string"},
        "title": {"type": "string"},
        "interactions": {"type": "array", "items": _INTERACTION, "maxItems": MAX_ITEMS},
    },
    "additionalProperties": _VALUE,
}
_META = {
    "type": "object",
    "required": ["name", "fields"],
    "properties": {
        "name": {"type": "string"},
        "fields": {"type": "array", "items": {"type": "object"}},
    },
}
# operation -> (request body, success status, success schema, error statuses)
_KHOROS: dict[str, tuple[Any, str, Any, list[str]]] = {
    "meta": (None, "200", _META, ["404"]),
    "search_customers": (_FIELDS, "200", {"type": "array", "items": _CUSTOMER}, ["400"]),
    "bestmatch": ({"type": "object"}, "200", {"type": "array", "items": _CUSTOMER}, ["400"]),
    "create_customer": (_FIELDS, "201", _CUSTOMER, ["400", "422"]),
    "find_customer": (None, "200", _CUSTOMER, ["404"]),
    "update_customer": (_FIELDS, "201", _CUSTOMER, ["400", "404", "422"]),
    "find_cases": (None, "200", {"type": "array", "items": _CASE}, ["404"]),
    "create_case": (_CASE_BODY, "201", _CASE, ["400", "404", "422"]),
    "find_case": (None, "200", _CASE, ["404"]),
    "update_case": (_CASE_BODY, "200", _CASE, ["400", "404", "422"]),
}
_ALWAYS = ["401", "413", "415", "429", "500", "502", "503", "504"]


def _error_responses(statuses: list[str]) -> dict[str, Any]:
    body = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {s: {"description": f"error {s}", **body} for s in statuses}


def _khoros_path(path: str, method: str, operation: str) -> dict[str, Any]:
    body, ok, schema, errors = _KHOROS[operation]
    op: dict[str, Any] = {
        "operationId": operation,
        "security": [{"apiKey": []}],
        "responses": {
            ok: {"description": "success", "content": {"application/json": {"schema": schema}}},
            **(
                {"204": {"description": "nothing matches"}}
                if operation == "search_customers"
                else {}
            ),
            **_error_responses(errors + _ALWAYS),
        },
    }
    params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return {method.lower(): op}


def document(base_path: str, expertflow_prefix: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, _, operation in khoros.ROUTES:
        paths.setdefault(base_path + path, {}).update(_khoros_path(path, method, operation))
    plain = {"application/json": {"schema": {"type": "object"}}}
    # A key in a header or in the URL Hybrid Chat is configured with (docs/behaviour.md §2.4).
    keyed: list[dict[str, list[str]]] = [{"expertflowKey": []}, {"expertflowQuery": []}]
    paths[expertflow_prefix + "/customer"] = {
        "get": {
            "operationId": "customer_by_phone",
            "security": keyed,
            "parameters": [
                {
                    "name": "query",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^phone:"},
                }
            ],
            "responses": {
                "200": {"description": "the customer", "content": plain},
                **_error_responses(["400", "404", "401", "502", "503", "504"]),
            },
        }
    }
    paths[expertflow_prefix + "/label"] = {
        "get": {
            "operationId": "labels",
            "security": keyed,
            "responses": {
                "200": {
                    "description": "every label",
                    "content": {
                        "application/json": {
                            "schema": {"type": "array", "items": {"type": "object"}}
                        }
                    },
                },
                **_error_responses(["401", "502", "503", "504"]),
            },
        }
    }
    for path, what in (("/healthz", "alive"), ("/readyz", "ready")):
        paths[path] = {
            "get": {
                "operationId": path.strip("/"),
                "responses": {
                    "200": {"description": what, "content": plain},
                    "503": {"description": "not ready", "content": plain},
                },
            }
        }
    paths["/metrics"] = {
        "get": {
            "operationId": "metrics",
            "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {}}}},
        }
    }
    paths["/openapi.json"] = {
        "get": {
            "operationId": "openapi",
            "responses": {"200": {"description": "this document", "content": plain}},
        }
    }
    paths["/admin/cache/purge"] = {
        "post": {
            "operationId": "purge_caches",
            "security": [{"adminKey": []}],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "caches": {"type": "array", "items": {"enum": list(Caches.NAMES)}}
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": {"description": "purged", "content": plain},
                **_error_responses(["400", "401", "404"]),
            },
        }
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "crm-gateway",
            "version": "1",
            "description": "Khoros Custom CRM API and Expertflow priority routing",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "Authorization"},
                "adminKey": {"type": "http", "scheme": "bearer"},
                "expertflowKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "expertflowQuery": {"type": "apiKey", "in": "query", "name": "api_key"},
            },
        },
    }


async def openapi(request: web.Request) -> web.Response:
    config = reloading.of(request).config
    return jsonio.response(document(config.server.base_path, config.expertflow.path_prefix))
