"""The deployment files in deploy/ run commands that exist, set settings that exist, and give workers
longer to stop than WORKER_SHUTDOWN_TIMEOUT_S. Docker itself is used only where an engine answers."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from envoi.api.app import create_app
from envoi.cli import app as cli_app
from envoi.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SETTINGS = {name.upper() for name in Settings.model_fields}
COMMANDS = set(typer.main.get_command(cli_app).commands)  # type: ignore[attr-defined]
SHUTDOWN_DEFAULT_S = Settings.model_fields["worker_shutdown_timeout_s"].default


def _yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _seconds(value: str | int) -> float:
    match = re.fullmatch(r"(\d+)(s|m)?", str(value))
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def _api_paths() -> set[str]:
    return set(create_app(None).openapi()["paths"])


def test_compose_runs_envoi_commands_with_known_settings() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    envoi_services = {name: s for name, s in services.items() if s.get("image") == "envoi:latest"}
    assert set(envoi_services) == {"migrate", "api", "worker"}
    for name, service in envoi_services.items():
        assert service["command"][0] in COMMANDS, name
        unknown = set(service["environment"]) - SETTINGS
        assert not unknown, f"{name}: not envoi settings: {unknown}"
    worker = envoi_services["worker"]
    shutdown = float(worker["environment"]["WORKER_SHUTDOWN_TIMEOUT_S"])
    assert _seconds(worker["stop_grace_period"]) > shutdown
    assert worker["deploy"]["replicas"] == 2
    assert "noeviction" in services["redis"]["command"] and "--appendonly" in services["redis"]["command"]


def test_kubernetes_manifests_probe_real_routes_and_outwait_the_shutdown() -> None:
    docs = [doc for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")) for doc in _yaml_documents(path)]
    by_kind: dict[tuple[str, str], dict[str, Any]] = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    config = by_kind[("ConfigMap", "envoi")]["data"]
    secret = by_kind[("Secret", "envoi")]["stringData"]
    assert not (set(config) | set(secret)) - SETTINGS
    paths = _api_paths()
    api = by_kind[("Deployment", "envoi-api")]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    worker_pod = by_kind[("Deployment", "envoi-worker")]["spec"]["template"]["spec"]
    assert worker_pod["terminationGracePeriodSeconds"] > float(config["WORKER_SHUTDOWN_TIMEOUT_S"])
    job = by_kind[("Job", "envoi-migrate")]["spec"]["template"]["spec"]["containers"][0]
    for container in (api, worker_pod["containers"][0], job):
        assert container["args"][0] in COMMANDS


def test_systemd_units_run_envoi_commands_and_outwait_the_shutdown() -> None:
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str  # type: ignore[assignment,method-assign]
        unit.read(path)
        service = unit["Service"]
        for key in ("ExecStartPre", "ExecStart"):
            if key in service:
                argv = shlex.split(service[key])
                assert argv[0].endswith("/envoi") and argv[1] in COMMANDS, (path.name, argv)
        if "worker" in path.name:
            assert float(service["TimeoutStopSec"]) > SHUTDOWN_DEFAULT_S


def test_dockerfile_runs_envoi_as_a_user_that_is_not_root() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["envoi"\]$', text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    cmd = re.search(r"^CMD \[(.*)\]$", text, re.M)
    assert cmd and cmd.group(1).split(",")[0].strip().strip('"') in COMMANDS


def test_image_builds_and_answers_healthz_where_docker_runs() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no Docker engine on this machine: the image is not built here")
    root = DEPLOY.parent
    build = subprocess.run(
        [docker, "build", "-q", "-f", str(DEPLOY / "Dockerfile"), "-t", "envoi:test", str(root)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert build.returncode == 0, build.stderr
    version = subprocess.run(
        [docker, "run", "--rm", "envoi:test", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert version.returncode == 0 and "worker" in version.stdout
