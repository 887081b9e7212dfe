"""`crm-gateway check`: the start-up validation, on its own, one problem a line as
`file:line: key: what is wrong`. With --online, the upstream's own field definitions are read and
compared with the mapping: fields mapped to nothing upstream, and upstream fields left unmapped."""

from __future__ import annotations

from typing import Any, TextIO

from gateway import deadline, logs, reloading, runtime
from gateway.config import Config
from gateway.errors import ConfigError, GatewayError
from gateway.mapping.discovery import discovered_field
from gateway.mapping.model import FieldSpec, ListWrite, ObjectSpec
from gateway.mapping.spec import load_mapping
from gateway.yamlfile import YamlDoc
from gateway.yamlfile import load as load_yaml


def check(config_file: str, *, out: TextIO) -> tuple[int, Config | None]:
    """Exit code, and the config when it is valid."""
    try:
        config = reloading.load(config_file).config
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(line, file=out)
        return 1, None
    return 0, config


async def check_online(config: Config, out: TextIO) -> int:
    built = runtime.build(config, load_mapping(config.upstream.mapping))
    doc = load_yaml(config.upstream.mapping)
    errors = notes = 0
    logs.start_request()
    await built.upstream.start()
    try:
        for kind in ("customer", "case"):
            obj = built.mapping.objects[kind]
            if obj.custom_fields is None:
                continue
            try:
                meta, margin = config.deadlines.budget("meta"), config.deadlines.margin_seconds
                with deadline.budget(meta, margin):
                    data = await built.engine.fetch(
                        obj.custom_fields.request, built.engine.base_ctx
                    )
            except GatewayError as exc:
                problem = f"{exc.message} ({exc.detail})"
                print(
                    f"{config.upstream.base_url}: {kind} field definitions unreadable: {problem}",
                    file=out,
                )
                return 1
            e, n = _compare(obj, data, doc, out)
            errors, notes = errors + e, notes + n
    finally:
        await built.upstream.close()
    summary = f"{errors} mapped field(s) missing upstream, {notes} upstream field(s) not mapped"
    print(f"online: {summary}", file=out)
    return 1 if errors else 0


def _compare(obj: ObjectSpec, data: Any, doc: YamlDoc, out: TextIO) -> tuple[int, int]:
    spec = obj.custom_fields
    assert spec is not None
    raw = data if isinstance(data, dict) else {}
    # Every definition the upstream has (the `items` filter may leave some out on purpose).
    everything = [x for v in raw.values() if isinstance(v, list) for x in v if isinstance(x, dict)]
    used = spec.items(raw) or []
    made = [f for f in (_field(spec, item) for item in everything) if f is not None]
    targets = {t for t in (_target(f.write) for f in made) if t is not None}
    containers = {t[0] for t in targets}
    errors = notes = 0
    for i, f in enumerate(obj.fields):
        target = _target(f.write)
        if target and target[0] in containers and target not in targets:
            where = f"{doc.file}:{doc.line(('objects', obj.kind, 'fields', i, 'write'))}"
            problem = f"'{f.name}' writes {_show(f.write)}, which the upstream does not define"
            print(f"{where}: objects.{obj.kind}.fields[{i}]: {problem}", file=out)
            errors += 1
    for item in used:
        if isinstance(item, dict) and _field(spec, item) is None:
            label = item.get("key") or item.get("title") or item.get("id")
            line = doc.line(("objects", obj.kind, "custom_fields", "types"))
            problem = f"upstream field '{label}' (type {item.get('type')}) is not mapped"
            print(
                f"{doc.file}:{line}: objects.{obj.kind}.custom_fields.types: {problem}; "
                "add its type to map it",
                file=out,
            )
            notes += 1
    return errors, notes


def _field(spec: Any, item: dict[str, Any]) -> FieldSpec | None:
    try:
        return discovered_field(spec, item)
    except (KeyError, TypeError, ValueError):
        return None


def _target(write: str | ListWrite | None) -> tuple[str, str] | None:
    """Where a write goes, comparable across fields: (container, key)."""
    if isinstance(write, ListWrite):
        return write.list, repr(sorted(write.item.items()))
    if isinstance(write, str) and "." in write:
        parent, _, leaf = write.rpartition(".")
        return parent, leaf
    return None


def _show(write: str | ListWrite | None) -> str:
    if isinstance(write, ListWrite):
        return f"{write.list} item {dict(write.item)}"
    return str(write)
