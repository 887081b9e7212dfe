"""What ships with the gateway: a version that agrees everywhere, and mappings that a config names
bare. The wheel is built for real and run from an empty directory, as a new user would."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, free_port, wait_for

from gateway import shipped


def minimal_config() -> str:
    """The complete config of README's "Deploying" section."""
    section = (ROOT / "README.md").read_text().split("## Deploying", 1)[1]
    return section.split("```yaml\n", 1)[1].split("```", 1)[0]


def test_one_version_in_pyproject_the_package_and_the_changelog() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert shipped.version() == declared
    changelog = (ROOT / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert released[0] == declared  # the newest entry is this version
    assert "## [Unreleased]" in changelog.split(f"## [{declared}]")[0]


def test_bare_names_are_the_shipped_mappings() -> None:
    assert shipped.mapping_names() == ["rt5", "zendesk"]
    assert shipped.mapping("zendesk").read_bytes() == (ROOT / "mappings/zendesk.yaml").read_bytes()
    assert shipped.is_bare("rt5") and shipped.is_bare("my_crm-2")
    for path in ("zendesk.yaml", "mappings/zendesk", "./zendesk", "/etc/x", "..", "a b"):
        assert not shipped.is_bare(path), path


def test_an_unknown_name_lists_the_shipped_ones() -> None:
    with pytest.raises(shipped.UnknownMapping) as err:
        shipped.mapping("zendsk")
    assert str(err.value) == (
        "no mapping named 'zendsk' ships with crm-gateway; did you mean 'zendesk'? "
        "shipped: rt5, zendesk. A file of your own is named by its path (mappings/zendsk.yaml)"
    )


def source_files() -> set[str]:
    """What the wheel must hold: the package's code and data, and mappings/ as its package."""
    found = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "gateway").rglob("*")
        if p.is_file() and p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts
    }
    found |= {f"gateway/mappings/{p.name}" for p in (ROOT / "mappings").glob("*.yaml")}
    return found


def run(*args: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=180, **kwargs
    )  # type: ignore[call-overload]
    assert done.returncode == 0, done.stdout + done.stderr
    return done  # type: ignore[no-any-return]


def test_the_minimal_config_is_the_one_asked_for() -> None:
    assert yaml.safe_load(minimal_config()) == {
        "server": {"port": 8080},
        "auth": {"api_keys": "k"},
        "upstream": {
            "mapping": "zendesk",
            "base_url": "http://127.0.0.1:9",
            "credentials": {"email": "a@b.c", "api_token": "t"},
        },
    }


def test_the_wheel_serves_the_minimal_config_from_an_empty_directory(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """pip wheel (with build isolation, as `pip install .` does), installed into a fresh
    virtualenv; the dependencies are borrowed from this one's site-packages to keep it fast (a
    path in a .pth file: this checkout and its editable install stay out of sight)."""
    dist, venv, empty = tmp_path / "dist", tmp_path / "venv", tmp_path / "empty"
    empty.mkdir()
    # Built from a copy, as the Dockerfile does: a build/ left in the checkout by an earlier
    # build would add its stale files to the wheel.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("gateway", "mappings"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source)
    (wheel,) = dist.glob("crm_gateway-*.whl")
    held = {n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    assert held == source_files()
    assert wheel.name.startswith(f"crm_gateway-{shipped.version()}-")

    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .stdout.strip())  # fmt: skip
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    command = venv / "bin" / "crm-gateway"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    assert (
        run(command, "--version", cwd=empty, env=env).stdout == f"crm-gateway {shipped.version()}\n"
    )
    (empty / "c.yaml").write_text(minimal_config())
    checked = run(command, "check", "--config", "c.yaml", cwd=empty, env=env).stdout
    assert checked == f"ok: c.yaml and {site}/gateway/mappings/zendesk.yaml are valid\n"

    port = free_port()
    proc = subprocess.Popen(
        [command, "serve"],
        cwd=empty,
        env={**env, "GATEWAY_CONFIG": "c.yaml", "GATEWAY_PORT": str(port)},
        stdout=subprocess.PIPE,
    )
    processes.append(proc)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    processes.remove(proc)
    assert proc.stdout is not None
    started = proc.stdout.readline().decode()
    assert f'"mapping":"{site}/gateway/mappings/zendesk.yaml"' in started
    assert f'"version":"{shipped.version()}"' in started
