"""The shape of the code base, kept as the house rules say: small modules, a core that names no
CRM, and test modules that stand alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

GATEWAY = ROOT / "gateway"
SANDBOX = GATEWAY / "sandbox"
MAX_LINES = 400
# What names a CRM: its name, or the name of its mapping.
CRM_NAMES = re.compile(r"zendesk|rt5|request tracker", re.IGNORECASE)
RT = re.compile(r"\bRT\b")


def sources(under: Path) -> list[Path]:
    return sorted(p for p in under.rglob("*.py") if "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    """Every module a file imports, wherever the import stands (in a function too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The modules of ``modules`` a file imports, wherever the import stands (at the top, in a
    function, under TYPE_CHECKING): `from package import name` is the submodule when there is
    one, else the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    """Which gateway module imports which."""
    modules = {module_name(p) for p in sources(GATEWAY)}
    return {
        module_name(p): imported_modules(p, modules) - {module_name(p)} for p in sources(GATEWAY)
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 50 and graph["gateway.app"]  # the graph is read
    assert cycles(graph) == []


def test_a_cycle_is_seen_wherever_its_imports_stand() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def is_test_module(module: str, tests: set[str]) -> bool:
    parts = module.split(".")
    return parts[0] in tests or (parts[0] == "tests" and len(parts) > 1 and parts[1] in tests)


def test_no_module_is_over_the_limit() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in sources(GATEWAY)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (at most {MAX_LINES} lines each)"


def test_only_the_sandbox_names_a_crm() -> None:
    named = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in sources(GATEWAY)
        if SANDBOX not in p.parents
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if CRM_NAMES.search(line) or RT.search(line)
    ]
    assert named == [], "CRM specifics belong in mappings/*.yaml and gateway/sandbox/"


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The scans above would pass on an empty tree: show that they find what they forbid."""
    assert CRM_NAMES.search("Zendesk's quota") and RT.search("RT answers 200")
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from gateway import app\n"
        "def f():\n    from test_cli import x\n    import conftest\n"
    )
    found = imported(probe)
    assert {"test_cli", "test_cli.x", "conftest", "gateway.app"} <= found
    assert imported_modules(probe, {"gateway", "gateway.app", "conftest"}) == {
        "gateway.app",
        "conftest",
    }
    tests = {"test_cli"}
    assert [m for m in sorted(found) if is_test_module(m, tests)] == ["test_cli", "test_cli.x"]
    assert not is_test_module("aiohttp.test_utils", tests)
    assert is_test_module("tests.test_cli", tests)


# Modules of declarations only (types, a protocol, a clock), or tested through another module.
WITHOUT_TESTS_OF_THEIR_OWN = {
    "gateway/__main__.py": "`python -m gateway`: test_cli.py runs it",
    "gateway/fleet/settings.py": "a dataclass",
    "gateway/fleet/host.py": "the workers' side of the relay: test_fleet_relay.py",
    "gateway/lifecycle.py": "the state /readyz reads: test_ops.py, test_serving.py",
    "gateway/upstream/call.py": "a dataclass and a protocol",
    "gateway/upstream/clock.py": "the system clock (the layers' tests inject theirs)",
}


def test_every_module_with_behaviour_has_its_test_module() -> None:
    """Tests mirror modules: gateway/x.py in tests/test_x.py, gateway/pkg/x.py in
    tests/test_x.py or tests/test_pkg_x.py (the sandbox is tested whole, test_sandbox.py)."""
    missing = []
    for path in sources(GATEWAY):
        name = str(path.relative_to(ROOT))
        if path.stem == "__init__" or SANDBOX in path.parents or name in WITHOUT_TESTS_OF_THEIR_OWN:
            continue
        package = path.parent.relative_to(GATEWAY).as_posix().replace("/", "_")
        candidates = {f"test_{path.stem}.py", f"test_{package}_{path.stem}.py"}
        if not any((ROOT / "tests" / c).is_file() for c in candidates):
            missing.append(name)
    assert missing == []
    assert all((ROOT / m).is_file() for m in WITHOUT_TESTS_OF_THEIR_OWN)


def test_no_test_module_imports_another() -> None:
    tests = {p.stem for p in sources(ROOT / "tests") if p.stem.startswith("test_")}

    def a_test(module: str) -> bool:
        parts = module.split(".")
        return parts[0] in tests or (parts[0] == "tests" and parts[1:2] != [] and parts[1] in tests)

    found = {
        str(p.relative_to(ROOT)): sorted(filter(a_test, imported(p)))
        for p in sources(ROOT / "tests")
    }
    assert {k: v for k, v in found.items() if v} == {}, "shared helpers go to conftest.py"
