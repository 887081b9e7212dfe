"""Field maps in both directions, as pure functions: upstream records to caller objects, caller
bodies to upstream changes, search terms and the re-check of search results."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gateway.errors import BadRequest, FieldError, ValidationFailed
from gateway.mapping.codecs import CODECS, Codecs, Malformed
from gateway.mapping.field_types import FIELD_TYPES
from gateway.mapping.model import FieldSpec, Join, ListWrite, ObjectSpec

_EMPTY: tuple[Any, ...] = (None, "", [], {})
# A record id that may go into an upstream path: anything else could address another resource.
RECORD_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
CORE_META = {
    "customer": [("id", "ID"), ("uri", "Link")],
    "case": [("id", "ID"), ("linkUrl", "Link")],
}


def meta_of(obj: ObjectSpec) -> dict[str, Any]:
    """The caller's description of an object: its core properties, then its fields."""
    out = [
        {"name": n, "label": label, "type": "text", "searchable": False}
        for n, label in CORE_META[obj.kind]
    ]
    for f in obj.fields:
        if not f.meta:
            continue
        entry: dict[str, Any] = {
            "name": f.name,
            "label": f.label,
            "type": f.type,
            "searchable": f.searchable and obj.kind == "customer",
        }
        if FIELD_TYPES[f.type].options:
            entry["listValues"] = [{"name": n, "value": v} for n, v in f.options]
        out.append(entry)
    return {"name": obj.kind, "fields": out}


def join(obj: ObjectSpec, record: Mapping[str, Any], data: Any) -> dict[str, Any]:
    """The record with each declared join attached under its name."""
    return joiner(obj, data)(record)


def joiner(obj: ObjectSpec, data: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """`join` for the records of one answer: each join's source is read once (at the first
    record), not once a record."""
    sources: list[tuple[str, Join, list[Mapping[str, Any]]]] | None = None

    def joined(record: Mapping[str, Any]) -> dict[str, Any]:
        nonlocal sources
        if sources is None:
            sources = [
                (name, j, [x for x in j.source(data) or [] if isinstance(x, Mapping)])
                for name, j in obj.joins.items()
            ]
        out = dict(record)
        for name, j, candidates in sources:
            key = j.equals(record)
            found = [x for x in candidates if x.get(j.where) == key]
            out[name] = (found[0] if found else None) if j.one else found
        return out

    return joined


def read_value(f: FieldSpec, record: Mapping[str, Any]) -> Any:
    value = f.read(record)
    if value in _EMPTY:
        return None
    if f.map:
        value = f.map.get(str(value), value)
    return CODECS[f.codec][0](value)


def _reader(f: FieldSpec) -> Callable[[Mapping[str, Any]], Any]:
    """`read_value` of one field, with its path, map and codec looked up once."""
    get, mapped, decode = f.read.get, f.map, CODECS[f.codec][0]

    def read(record: Mapping[str, Any]) -> Any:
        value = get(record)
        if value in _EMPTY:
            return None
        return decode(mapped.get(str(value), value) if mapped else value)

    return read


_CASE_REQUIRED = ("number", "customerId", "title", "description")
# The readers of an object's fields, by the object (kept while it is: its id alone may be
# taken again by another once it is gone).
_READERS: dict[int, tuple[ObjectSpec, list[tuple[str, Callable[[Any], Any], bool]]]] = {}


def _readers(obj: ObjectSpec) -> list[tuple[str, Callable[[Any], Any], bool]]:
    """Each field's name, reader, and whether an empty value is written as "" (the required
    keys of the case object)."""
    kept = _READERS.get(id(obj))
    if kept is not None and kept[0] is obj:
        return kept[1]
    if len(_READERS) >= 256:  # objects are made per mapping and per load of custom fields
        _READERS.clear()
    case = obj.kind == "case"
    readers = [(f.name, _reader(f), case and f.name in _CASE_REQUIRED) for f in obj.fields]
    _READERS[id(obj)] = (obj, readers)
    return readers


def to_object(obj: ObjectSpec, record: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's object for one upstream record: core properties, then populated fields."""
    url = str(obj.url({**ctx, "record": record}))
    out: dict[str, Any] = {"id": CODECS["string"][0](obj.id(record))}
    if obj.kind == "customer":
        out.update(url=url, uri=url)
    else:
        out.update(url=url, linkUrl=url)
    for name, read, required in _readers(obj):
        value = read(record)
        if value is not None:
            out[name] = value
        elif required:
            out[name] = ""  # required keys of the case object
    return out


def not_kept(
    fields: Iterable[FieldSpec],
    body: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    codecs: Codecs,
) -> list[FieldError]:
    """The written fields of ``body`` whose value the caller's object ``result`` does not
    hold (compared as the field's search re-check compares)."""
    lost = []
    for f in fields:
        wanted = body.get(f.name)
        if f.write is None or wanted in (None, ""):
            continue
        have = result.get(f.name)
        if have is None or not codecs.match(f.match)(str(have), str(wanted)):
            lost.append(FieldError(f.name, f"{f.label} was not saved by the CRM."))
    return lost


def to_changes(
    fields: Iterable[FieldSpec], body: Mapping[str, Any], *, codecs: Codecs
) -> dict[str, Any]:
    """Upstream-shaped changes for the caller's fields in ``body``.

    Raises BadRequest (400) for unknown or read-only fields, wrong JSON types and values that
    cannot be read at all (a phone number that is none), and ValidationFailed (422) for values
    the field does not accept.
    """
    by_name = {f.name: f for f in fields}
    bad: list[FieldError] = []
    invalid: list[FieldError] = []
    changes: dict[str, Any] = {}
    written: list[str | ListWrite] = []
    extensions: list[tuple[str | ListWrite, Any]] = []
    for key, value in body.items():
        f = by_name.get(key)
        if f is None:
            bad.append(FieldError(key, "Unknown field."))
        elif f.write is None:
            bad.append(FieldError(key, "This field cannot be changed."))
        elif value is not None and not FIELD_TYPES[f.type].accepts(value):
            bad.append(FieldError(key, f"Must be {FIELD_TYPES[f.type].wants}."))
        else:
            try:
                _put(changes, f.write, _out_value(f, value, codecs))
            except Malformed as exc:
                bad.append(FieldError(key, f"{f.label} {exc}."))
            except ValueError as exc:
                invalid.append(FieldError(key, f"{f.label} {exc}."))
            else:
                written.append(f.write)
                if f.extension is not None:
                    extensions.append((f.extension, _extension(value, codecs)))
    if bad:
        raise BadRequest("Some fields are not valid.", fields=bad)
    if invalid:
        raise ValidationFailed("Some values are not valid.", fields=invalid)
    # A number's extension follows it (none clears an old one), unless the body writes that
    # place itself.
    for where, extension in extensions:
        if where not in written:
            _put(changes, where, extension)
    return changes


def _out_value(f: FieldSpec, value: Any, codecs: Codecs) -> Any:
    if value is None or (value == "" and f.codec != "string"):
        return None
    if f.options and str(value) not in {v for _, v in f.options}:
        raise ValueError("must be one of: " + ", ".join(v for _, v in f.options))
    if f.map_out:
        value = f.map_out.get(str(value), value)
    return codecs.to_upstream(f.codec, value)


def _extension(value: Any, codecs: Codecs) -> str | None:
    found = codecs.phones.read(value) if value not in (None, "") else None
    return found.extension if found else None


def _put(changes: dict[str, Any], where: str | ListWrite, value: Any) -> None:
    if isinstance(where, ListWrite):
        changes.setdefault(where.list, []).append({**where.item, "value": value})
        return
    *parents, leaf = where.split(".")
    node = changes
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def search_pairs(
    fields: Iterable[FieldSpec], body: Mapping[str, Any]
) -> list[tuple[FieldSpec, str]]:
    """Validate a search body: searchable fields, each value of its field's type as a write
    takes it (text for text, true or false for a checkbox), as the text it is searched as;
    empty values are left out."""
    by_name = {f.name: f for f in fields if f.searchable}
    pairs, bad = [], []
    for key, value in body.items():
        f = by_name.get(key)
        if f is None:
            bad.append(FieldError(key, "Not a searchable field."))
        elif not FIELD_TYPES[f.type].accepts(value):
            bad.append(FieldError(key, f"Must be {FIELD_TYPES[f.type].wants}."))
        elif searched := FIELD_TYPES[f.type].searched(value):
            pairs.append((f, searched))
    if bad:
        raise BadRequest("Some search fields are not valid.", fields=bad)
    if not pairs:
        raise BadRequest("Give at least one searchable field with a value.")
    return pairs


def search_terms(pairs: Iterable[tuple[FieldSpec, str]], ctx: Mapping[str, Any]) -> list[Any]:
    """One term per searched field, as its template makes it: text for a query language,
    or a structure (a filter object) that the request body sends as is."""
    return [f.search({**ctx, "value": v}) for f, v in pairs if f.search]


def normalised(
    pairs: Iterable[tuple[FieldSpec, str]], match: str | None, codecs: Codecs
) -> list[tuple[FieldSpec, str]] | None:
    """The searched values as the upstream stores them: a phone number in E.164, its
    extension left out. None when a phone value is no number: nothing can match it."""
    out = []
    for f, value in pairs:
        if (match or f.match) == "phone":
            number = codecs.phones.e164(value)
            if number is None:
                return None
            value = number
        out.append((f, value))
    return out


def matches(
    record: Mapping[str, Any],
    pairs: Iterable[tuple[FieldSpec, str]],
    match: str | None = None,
    *,
    codecs: Codecs,
) -> bool:
    """Does the record hold every searched value? Upstream search is fuzzy and lags writes."""
    for f, wanted in pairs:
        have = read_value(f, record)
        if have is None or not codecs.match(match or f.match)(have, wanted):
            return False
    return True
