"""docs/mappings.md: every key of the mapping schema is documented, and the walkthrough works."""

from __future__ import annotations

from typing import Any

from conftest import ROOT

from gateway.mapping.spec import mapping_schema


def keys(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            out.add(name)
            keys(sub, out)
        for value in node.values():
            keys(value, out)
    elif isinstance(node, list):
        for value in node:
            keys(value, out)
    return out


def test_every_mapping_key_is_documented() -> None:
    docs = (ROOT / "docs/mappings.md").read_text()
    missing = sorted(k for k in keys(mapping_schema(), set()) if f"`{k}`" not in docs)
    assert missing == []


def snippet(name: str) -> str:
    docs = (ROOT / "docs/mappings.md").read_text()
    return docs.split(f"<!-- walkthrough:{name} -->\n```yaml\n", 1)[1].split("```", 1)[0]


async def test_the_walkthrough_works_as_written(
    tmp_path: Any, make_client: Any, sandbox: Any, store: Any, monkeypatch: Any
) -> None:
    """docs/mappings.md's walkthrough, step by step, on a copy of the files."""
    import io
    import json
    import shutil

    from conftest import API, AUTH, EF_AUTH, gateway_env

    from gateway import check, explain
    from gateway.config import load_config
    from gateway.reloading import HOLDER

    (tmp_path / "mappings").mkdir()
    config_file = tmp_path / "config.example.yaml"
    shutil.copy(ROOT / "config.example.yaml", config_file)
    mapping = tmp_path / "mappings/zendesk.yaml"
    shutil.copy(ROOT / "mappings/zendesk.yaml", mapping)
    for k, v in gateway_env(str(sandbox.make_url("")).rstrip("/")).items():
        monkeypatch.setenv(k, v)
    client = await make_client(load_config(config_file))
    assert "loyaltyId" not in await (await client.get(f"{API}/customer/1001", headers=AUTH)).json()

    # 1. the alias, at the end of objects.customer.fields, just before custom_fields:
    text = mapping.read_text()
    anchor = "    # Every active custom user field becomes a customer field"
    text = text.replace(anchor, snippet("alias") + anchor, 1)
    # 2. the option in Zendesk, and its colour in the mapping
    vip = next(f for f in store.user_fields if f["key"] == "vip_level")
    vip["custom_field_options"].append({"id": 999, "name": "Diamond", "value": "diamond"})
    colors = next(line for line in text.splitlines() if line.startswith("    colors: "))
    text = text.replace(colors + "\n", snippet("colors"), 1)
    mapping.write_text(text)
    # 3. check, offline and online
    code, config = check.check(str(config_file), out=io.StringIO())
    assert code == 0 and config is not None
    report = io.StringIO()
    assert await check.check_online(config, report) == 0
    # 4. explain, live
    out = io.StringIO()
    assert (
        await explain.explain(
            config, "find_customer", id="1001", body={}, kind="customer", live=True, out=out
        )
        == 0
    )
    assert '"loyaltyId": "L-7788"' in out.getvalue()
    # 5. reload without a restart
    assert await client.server.app[HOLDER].reload(config_file)
    jane = await (await client.get(f"{API}/customer/1001", headers=AUTH)).json()
    assert jane["loyaltyId"] == "L-7788"
    labels = await (await client.get("/label", headers=EF_AUTH)).json()
    assert {"name": "Diamond", "color_code": "#b9f2ff"}.items() <= labels[-1].items()
    found = await client.post(f"{API}/customers", json={"loyaltyId": "L-7788"}, headers=AUTH)
    assert [c["id"] for c in json.loads(await found.text())] == ["1001"]


def test_the_layout_and_the_architecture_name_every_module() -> None:
    """README's Layout and docs/architecture.md's tree: each module of gateway/ and of
    gateway/mapping/ by name, each package by its directory."""
    readme = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    tree = (ROOT / "docs/architecture.md").read_text().split("## A request's path", 1)[0]
    gateway = ROOT / "gateway"
    for path in sorted(gateway.glob("*.py")):
        if path.stem != "__init__":
            assert path.name in tree, path.name
            assert f"gateway/{path.name}" in readme or path.stem == "__main__", path.name
    for package in sorted(p for p in gateway.iterdir() if (p / "__init__.py").is_file()):
        assert f"{package.name}/" in tree and f"gateway/{package.name}/" in readme, package
    mapping = readme.split("gateway/mapping/", 1)[1].split("gateway/sandbox/", 1)[0]
    for path in sorted((gateway / "mapping").glob("*.py")):
        if path.stem != "__init__":
            assert path.name in tree and path.stem in mapping, path.name
