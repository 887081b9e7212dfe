"""The Khoros Marketing Custom CRM API: routes, body checks, status codes (docs/behaviour.md §1)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from gateway import jsonio, reloading
from gateway.body import read_object
from gateway.errors import BadRequest, FieldError, NotFound
from gateway.mapping.engine import Engine

# Ids go into upstream paths: anything else could address another resource.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_TEXT = (str,)
_BESTMATCH: dict[str, tuple[type, ...]] = {
    "displayName": _TEXT,
    "screenName": _TEXT,
    "description": _TEXT,
    "profileUrl": _TEXT,
    "email": _TEXT,
    "phoneNumbers": (list,),
    "addresses": (list,),
    "orderNumbers": (list,),
    "caseNumbers": (list,),
    "accountNumbers": (str, list),
}
_INTERACTION_TEXT = ("created", "serviceId", "service", "contentType")


def _engine(request: web.Request) -> Engine:
    return reloading.of(request).engine


def _id(request: web.Request, what: str = "customer") -> str:
    value = request.match_info["id"]
    if not _ID.match(value):
        raise NotFound(f"No {what} exists with the given id.")
    return value


async def _body(request: web.Request) -> dict[str, Any]:
    found = await read_object(request)
    if found is None:
        raise BadRequest("The request body must be a JSON object.")
    return found


def _json(data: Any, status: int = 200) -> web.Response:
    return jsonio.response(data, status=status)


async def meta(request: web.Request) -> web.Response:
    kind = request.match_info["type"]
    if kind not in ("customer", "case"):
        raise NotFound("Meta type not supported: use customer or case.")
    return _json(await _engine(request).meta(kind))


async def search_customers(request: web.Request) -> web.Response:
    found = await _engine(request).search_customers(await _body(request))
    return _json(found) if found else web.Response(status=204)


async def bestmatch(request: web.Request) -> web.Response:
    body = await _body(request)
    bad = [
        FieldError(k, "Has the wrong type.")
        for k, types in _BESTMATCH.items()
        if body.get(k) is not None and not isinstance(body[k], types)
    ]
    for k in ("phoneNumbers", "orderNumbers", "caseNumbers"):
        if isinstance(body.get(k), list) and not all(isinstance(v, str) for v in body[k]):
            bad.append(FieldError(k, "Must be a list of text."))
    if bad:
        raise BadRequest("Some fields have the wrong type.", fields=bad)
    # Unknown keys are ignored: Khoros may send more context than the spec lists.
    return _json(await _engine(request).bestmatch(body))


async def find_customer(request: web.Request) -> web.Response:
    return _json(await _engine(request).find_customer(_id(request)))


async def find_cases(request: web.Request) -> web.Response:
    return _json(await _engine(request).find_cases(_id(request)))


async def create_customer(request: web.Request) -> web.Response:
    body = await _body(request)
    if not body:
        raise BadRequest("Give at least one customer field.")
    return _json(await reloading.of(request).customers.create(body), status=201)


async def update_customer(request: web.Request) -> web.Response:
    customer_id = _id(request)
    body = await _body(request)
    return _json(await reloading.of(request).customers.update(customer_id, body), status=201)


def case_body(body: Mapping[str, Any], *, create: bool) -> dict[str, Any]:
    """Check the structural keys of a case body; the custom fields are checked by the mapping."""
    out = dict(body)
    if "customId" in out:  # the reference schema's typo for customerId
        out.setdefault("customerId", out["customId"])
        del out["customId"]
    bad: list[FieldError] = []
    customer = out.get("customerId")
    if isinstance(customer, int) and not isinstance(customer, bool):
        out["customerId"] = customer = str(customer)
    if create and not customer:
        bad.append(FieldError("customerId", "Is required."))
    elif customer is not None and not isinstance(customer, str):
        bad.append(FieldError("customerId", "Must be text."))
    title = out.get("title")
    if create and (not isinstance(title, str) or not title.strip()):
        bad.append(FieldError("title", "Is required."))
    interactions = out.get("interactions")
    if interactions is not None:
        if not isinstance(interactions, list):
            bad.append(FieldError("interactions", "Must be a list."))
        else:
            out["interactions"] = [_interaction(i, n, bad) for n, i in enumerate(interactions)]
    if bad:
        raise BadRequest("Some case fields are not valid.", fields=bad)
    if (create or customer) and not _ID.match(str(customer)):
        raise NotFound("No customer exists with the given id.")
    return out


def _interaction(raw: Any, n: int, bad: list[FieldError]) -> dict[str, Any]:
    name = f"interactions[{n}]"
    if not isinstance(raw, dict):
        bad.append(FieldError(name, "Must be an object."))
        return {}
    for key in _INTERACTION_TEXT:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            bad.append(FieldError(f"{name}.{key}", "Is required text."))
    if not isinstance(raw.get("body"), str):  # "" is a photo or a video without text
        bad.append(FieldError(f"{name}.body", "Is required text (it may be empty)."))
    if raw.get("linkUrl") is not None and not isinstance(raw["linkUrl"], str):
        bad.append(FieldError(f"{name}.linkUrl", "Must be text."))
    author = raw.get("author") or {}
    if not isinstance(author, dict):
        bad.append(FieldError(f"{name}.author", "Must be an object."))
        author = {}
    return {**raw, "author": author}


async def create_case(request: web.Request) -> web.Response:
    body = case_body(await _body(request), create=True)
    return _json(await reloading.of(request).cases.create(body), status=201)


async def find_case(request: web.Request) -> web.Response:
    return _json(await _engine(request).find_case(_id(request, "case")))


async def update_case(request: web.Request) -> web.Response:
    case_id = _id(request, "case")
    body = case_body(await _body(request), create=False)
    return _json(await reloading.of(request).cases.update(case_id, body))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# (method, path, handler, operation name): the operation name is what logs and budgets use.
ROUTES: list[tuple[str, str, Handler, str]] = [
    ("GET", "/meta/object/{type}", meta, "meta"),
    ("POST", "/customers", search_customers, "search_customers"),
    ("POST", "/customer/bestmatch", bestmatch, "bestmatch"),
    ("POST", "/customer", create_customer, "create_customer"),
    ("GET", "/customer/{id}", find_customer, "find_customer"),
    ("PATCH", "/customer/{id}", update_customer, "update_customer"),
    ("GET", "/customer/{id}/cases", find_cases, "find_cases"),
    ("POST", "/case", create_case, "create_case"),
    ("GET", "/case/{id}", find_case, "find_case"),
    ("PATCH", "/case/{id}", update_case, "update_case"),
]
