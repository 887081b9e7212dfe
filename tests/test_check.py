"""`crm-gateway check`: the start-up validation on its own, by file, line and key; with
--online, the mapping compared with the upstream's own field definitions."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from conftest import ROOT, gateway_env, run_cli

from gateway import check
from gateway.config import Config, load_config


def test_check_exit_codes_and_messages(editable_files: tuple[Path, Path]) -> None:
    config, mapping = editable_files
    env = {**gateway_env("https://acme.zendesk.com"), "PATH": "/usr/bin:/bin"}
    ok = run_cli("check", "--config", str(config), env=env)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: ")
    text = mapping.read_text()
    text = text.replace("        read: email\n", "        raed: email\n", 1)
    text = text.replace("method: PUT", "method: PUTT", 1)
    mapping.write_text(text)
    bad = run_cli("check", "--config", str(config), env=env)
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert all(re.match(rf"{re.escape(str(mapping))}:\d+: [\w.\[\]]+: ", line) for line in lines)
    assert any("fields[1].raed: unknown key; did you mean 'read'?" in line for line in lines)
    assert any("request.method: 'PUTT' is not one of" in line for line in lines)


async def test_check_online_compares_with_the_upstream(
    sandbox: Any, editable_files: tuple[Path, Path]
) -> None:
    config_file, mapping = editable_files
    text = mapping.read_text().replace(
        "      - name: facebook\n",
        "      - {name: tier, read: 'user_fields.\"vip_levl\"', write: user_fields.vip_levl}\n"
        "      - name: facebook\n",
    )
    mapping.write_text(text.replace("        checkbox: {type: checkbox, codec: boolean}\n", "", 1))
    config = load_config(config_file, env=gateway_env(str(sandbox.make_url("")).rstrip("/")))
    out = io.StringIO()
    assert await check.check_online(config, out) == 1
    report = out.getvalue()
    assert "'tier' writes user_fields.vip_levl, which the upstream does not define" in report
    assert "upstream field 'newsletter' (type checkbox) is not mapped" in report
    assert "upstream field 'Refund approved' (type checkbox) is not mapped" in report
    assert (
        report.splitlines()[-1]
        == "online: 1 mapped field(s) missing upstream, 2 upstream field(s) not mapped"
    )


async def test_check_online_clean(config: Config) -> None:
    out = io.StringIO()
    assert await check.check_online(config, out) == 0
    assert (
        out.getvalue().strip()
        == "online: 0 mapped field(s) missing upstream, 0 upstream field(s) not mapped"
    )


def test_check_refuses_a_base_url_that_start_up_refuses() -> None:
    """Credentials in ZENDESK_URL, or a URL that does not parse, passed `check` and then
    failed every request (500, 502) with the password in the `started` line."""
    line = next(
        i
        for i, t in enumerate((ROOT / "config.example.yaml").read_text().splitlines(), 1)
        if "base_url:" in t
    )
    for url in ("http://user:TOPSECRET@127.0.0.1:18082", "http://user:TOPSECRET@[bad"):
        env = {**gateway_env(url), "PATH": "/usr/bin:/bin"}
        checked = run_cli("check", "--config", "config.example.yaml", env=env)
        served = run_cli("serve", "--config", "config.example.yaml", "--port", "9", env=env)
        assert checked.returncode == served.returncode == 1
        said = f"config.example.yaml:{line}: upstream.base_url: "
        assert checked.stdout.startswith(said) and said in served.stderr
        assert "TOPSECRET" not in checked.stdout + checked.stderr + served.stdout + served.stderr
