"""The deployment files (Dockerfile, deploy/systemd, deploy/kubernetes, deploy/config.yaml) say
what README's "Deploying" promises: a non-root user, one worker per container, health checks on
/healthz and /readyz, SIGHUP to reload, time to drain on SIGTERM. No container engine or systemd
runs here: the files are parsed, the unit is verified by systemd-analyze when it is installed,
and the image's command, config and health check are run as plain processes."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT, free_port, wait_for

from gateway import shipped, tracing
from gateway.config import Config, load_config

SCRIPT = Path(sys.executable).parent / "crm-gateway"  # the installed command
# What deploy/config.yaml needs from the environment at the least.
SITE = {"GATEWAY_API_KEYS": "deploy-key", "ZENDESK_URL": "http://127.0.0.1:9"}


def deployed_config() -> Config:
    return load_config(ROOT / "deploy/config.yaml", env=SITE)


def longest_budget() -> float:
    config = deployed_config()
    return max(config.deadlines.budget("meta"), config.deadlines.budget("default"))


def test_the_deployed_config_needs_only_keys_and_the_crm() -> None:
    config = deployed_config()
    assert config.upstream.mapping == shipped.mapping("zendesk")
    assert [k.reveal() for k in config.auth.api_keys] == ["deploy-key"]
    assert longest_budget() == pytest.approx(18)


# -- Dockerfile --


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), in order: continuation lines joined, comments dropped."""
    out, current = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        word, _, rest = (current + line).partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continuation"
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in final_stage():
        if word == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest))  # type: ignore[misc]
    return env


def one(word: str) -> str:
    found = [rest for w, rest in final_stage() if w == word]
    assert len(found) == 1, f"{word}: {found}"
    return found[0]


def test_the_image_runs_as_a_user_that_is_not_root() -> None:
    user = one("USER").split(":")[0]
    assert user not in ("root", "0") and user.isdigit()  # numeric: runAsNonRoot can check it
    made = [rest for w, rest in final_stage() if w == "RUN" and "useradd" in rest]
    assert made and f"--uid {user}" in made[0]


def test_the_image_listens_everywhere_with_one_worker() -> None:
    env = image_env()
    assert env["GATEWAY_HOST"] == "0.0.0.0"
    assert env["GATEWAY_WORKERS"] == "1"
    assert one("EXPOSE") == env["GATEWAY_PORT"]
    command = json.loads(one("CMD"))  # exec form: the gateway is PID 1 and gets SIGTERM
    assert command == ["crm-gateway", "serve"]  # no --workers, no --port: the ENV decides


def test_the_image_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [shlex.split(rest) for word, rest in dockerfile() if word == "COPY"]
    sources = [src for args in copies if not args[0].startswith("--") for src in args[:-1]]
    assert sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert Path(src).parts[0] not in ignored, f"{src} is excluded by .dockerignore"
    config = [args for args in copies if args[-1] == image_env()["GATEWAY_CONFIG"]]
    assert config == [["deploy/config.yaml", "/etc/crm-gateway/config.yaml"]]


def test_the_images_command_serves_and_its_health_check_passes(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """CMD with the image's ENV (host and port made local), from an empty directory, and then
    the HEALTHCHECK's own command against it."""
    port = str(free_port())
    env = {
        **image_env(),
        **SITE,
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": port,
        "GATEWAY_CONFIG": str(ROOT / "deploy/config.yaml"),
        "PATH": f"{SCRIPT.parent}:/usr/bin:/bin",
    }
    command = json.loads(one("CMD"))
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE)
    processes.append(proc)
    wait_for(f"http://127.0.0.1:{port}/healthz")
    check = json.loads(one("HEALTHCHECK").split(" CMD ", 1)[1])
    assert "/healthz" in check[-1]
    check[0] = sys.executable if check[0] == "python" else check[0]
    assert subprocess.run(check, env=env, timeout=30).returncode == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    processes.remove(proc)
    stopped = subprocess.run(check, env=env, capture_output=True, timeout=30)
    assert stopped.returncode != 0  # the check can fail


# -- Kubernetes --


def manifests() -> dict[str, dict[str, Any]]:
    docs = yaml.safe_load_all((ROOT / "deploy/kubernetes/crm-gateway.yaml").read_text())
    return {d["kind"]: d for d in docs if d}


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = manifests()["Deployment"]["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod()["containers"]
    assert isinstance(only, dict)
    return only


def test_kubernetes_probes_liveness_on_healthz_and_readiness_on_readyz() -> None:
    ports = {p["name"]: p["containerPort"] for p in container()["ports"]}
    assert ports == {"http": int(image_env()["GATEWAY_PORT"])}
    assert container()["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container()["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def pod_env() -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container().get("env", [])}


def test_kubernetes_gives_requests_in_flight_time_to_finish() -> None:
    """The grace period holds a preStop pause (if any), the gateway's drain delay, the longest
    budget and the flush of the last spans."""
    pause = 0.0
    pre_stop = container().get("lifecycle", {}).get("preStop", {}).get("exec", {})
    if pre_stop:
        assert pre_stop["command"][0] == "sleep"
        pause = float(pre_stop["command"][1])
    drain = load_config(ROOT / "deploy/config.yaml", env={**SITE, **pod_env()}).server
    assert drain.drain_delay_seconds > 0
    needed = pause + drain.drain_delay_seconds + longest_budget() + tracing.FLUSH_SECONDS
    assert pod()["terminationGracePeriodSeconds"] > needed


def test_kubernetes_sees_the_pod_unready_inside_the_drain_delay() -> None:
    probe = container()["readinessProbe"]
    config = load_config(ROOT / "deploy/config.yaml", env={**SITE, **pod_env()})
    assert probe["periodSeconds"] * probe["failureThreshold"] < config.server.drain_delay_seconds
    assert deployed_config().server.drain_delay_seconds == 0  # elsewhere: stopped at once


def test_kubernetes_runs_one_worker_as_the_images_user() -> None:
    security = pod()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == one("USER").split(":")[0] != "0"
    assert container()["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod_env().get("GATEWAY_WORKERS", image_env()["GATEWAY_WORKERS"]) == "1"
    assert container()["image"] == f"crm-gateway:{shipped.version()}"


def test_kubernetes_service_reaches_the_pods() -> None:
    service = manifests()["Service"]["spec"]
    labels = manifests()["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    named = {p["name"] for p in container()["ports"]}
    assert {p["targetPort"] for p in service["ports"]} <= named


# -- systemd --

UNIT = ROOT / "deploy/systemd/crm-gateway.service"


def unit() -> dict[str, list[tuple[str, str]]]:
    """Section -> (key, value) in order; keys may repeat, as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def service(key: str) -> list[str]:
    return [v for k, v in unit()["Service"] if k == key]


def test_the_unit_runs_as_a_user_of_its_own_and_reloads_on_sighup() -> None:
    assert service("DynamicUser") == ["yes"] or service("User") not in ([], ["root"])
    assert service("User") == ["crm-gateway"]
    assert service("ExecStart") == ["/opt/crm-gateway/bin/crm-gateway serve"]
    assert service("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert "GATEWAY_CONFIG=/etc/crm-gateway/config.yaml" in service("Environment")
    assert service("Restart") == ["on-failure"]
    assert unit()["Install"] == [("WantedBy", "multi-user.target")]


def test_the_unit_lets_requests_in_flight_finish() -> None:
    # The supervisor alone gets SIGTERM and passes it on; systemd waits longer than a budget.
    assert service("KillMode") == ["mixed"]
    assert float(service("TimeoutStopSec")[0]) > longest_budget()


def test_the_unit_is_hardened() -> None:
    for key, value in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ]:
        assert service(key) == [value], key


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is missing")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """On a copy whose ExecStart is this installation's command (verify checks that it is
    there); every complaint about the unit fails the test, not only errors."""
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace("/opt/crm-gateway/bin/crm-gateway", str(SCRIPT)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    # Other units installed on the machine may have problems of their own: only ours count.
    ours = [x for x in (done.stdout + done.stderr).splitlines() if UNIT.name in x]
    assert done.returncode == 0 and ours == [], done.stdout + done.stderr
