"""/health/ready checks what the configuration in force uses, and nothing else; /health adds the
service's name, version and every dependency's state; /health/live asks nothing.

Every dependency that must not be checked points at a closed port (127.0.0.1:1): if
readiness asked it, the answer would be 503. The ones that must be checked are the real
local Redis and RabbitMQ, or a closed port to see the failure named.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

ROOT = Path(__file__).resolve().parents[2]
DEAD_REDIS = "redis://127.0.0.1:1/0"
DEAD_AMQP = "amqp://guest:guest@127.0.0.1:1//"
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LIVE_AMQP = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")

pytestmark = pytest.mark.django_db


def redis_cache(url: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


@pytest.fixture
def nothing_else(settings):
    """`make run`'s shape (local-memory cache, tasks in-process, events off), every other URL dead."""
    settings.CACHES = LOCMEM
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.REDIS_URL = DEAD_REDIS
    settings.CELERY_BROKER_URL = DEAD_REDIS
    settings.AMQP_URL = DEAD_AMQP
    return settings


def ready(client) -> tuple[int, dict]:
    response = client.get("/health/ready")
    return response.status_code, response.json()["checks"]


def test_embedded_configuration_checks_the_database_only(client, nothing_else):
    status, checks = ready(client)
    assert status == 200, checks
    assert set(checks) == {"database"}


def test_a_redis_cache_is_checked(client, nothing_else, settings):
    settings.CACHES = redis_cache(settings.REDIS_URL)
    status, checks = ready(client)
    assert status == 503
    assert set(checks) == {"database", "redis"}
    assert checks["redis"]["status"] == "error"

    settings.CACHES = redis_cache(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    status, checks = ready(client)
    assert status == 200, checks
    assert checks["redis"]["status"] == "ok"


@pytest.mark.parametrize(
    ("dead", "live"),
    [(DEAD_REDIS, os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")), (DEAD_AMQP, LIVE_AMQP)],
    ids=["redis-broker", "amqp-broker"],
)
def test_the_celery_broker_is_checked_unless_tasks_run_in_process(client, nothing_else, settings, dead, live):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = dead
    status, checks = ready(client)
    assert status == 503
    assert set(checks) == {"database", "broker"}
    assert checks["broker"]["status"] == "error"

    settings.CELERY_BROKER_URL = live
    status, checks = ready(client)
    assert status == 200, checks
    assert checks["broker"]["status"] == "ok"


def test_a_broker_on_the_cache_redis_is_checked_once(client, nothing_else, settings):
    live = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings.CACHES = redis_cache(live)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = live
    status, checks = ready(client)
    assert status == 200, checks
    assert set(checks) == {"database", "redis"}


def make_run_environment() -> dict[str, str]:
    """The variables the Makefile's `run` target sets (RUN_ENV), as `make run` passes them."""
    text = (ROOT / "Makefile").read_text()
    line = re.search(r"^RUN_ENV\s*:?=(.*)$", text, re.MULTILINE)
    assert line, "the Makefile defines RUN_ENV for `make run`"
    words = shlex.split(line.group(1))
    pairs = dict(word.split("=", 1) for word in words)
    assert {"CACHE_BACKEND", "CELERY_TASK_ALWAYS_EAGER"} <= set(pairs), pairs
    return {k: v for k, v in pairs.items() if "$(" not in v}


def test_under_make_run_readiness_needs_nothing_but_the_database(tmp_path):
    """The Makefile's own RUN_ENV, in a fresh process, with Redis and RabbitMQ unreachable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "CACHE_", "AUTH_LDAP_"))}
    env.update(make_run_environment())
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        REDIS_URL=DEAD_REDIS,
        BROKER_URL=DEAD_REDIS,
        AMQP_URL=DEAD_AMQP,
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    code = (
        "import json, django; django.setup()\nfrom config.health import run_checks\nprint(json.dumps(run_checks()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    ok, checks = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(checks) == {"database"}, checks
    assert ok, checks


def test_health_names_the_service_its_version_and_every_dependency(client, nothing_else, settings):
    """`make run`'s shape: the database checked, the rest reported unused."""
    response = client.get("/health")
    assert response.status_code == 200, response.content
    body = response.json()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert (body["service"], body["version"], body["status"]) == ("workstream", version, "ok")
    assert set(body["checks"]) == {"database"}
    deps = body["dependencies"]
    assert deps["database"]["status"] == "ok" and deps["database"]["ms"] >= 0
    assert {name: deps[name] for name in ("redis", "rabbitmq", "broker")} == dict.fromkeys(
        ("redis", "rabbitmq", "broker"), {"status": "unused"}
    )


def test_health_reports_a_shared_url_once_and_a_failure_with_a_503(client, nothing_else, settings):
    live = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings.CACHES = redis_cache(live)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = live
    body = client.get("/health").json()
    assert body["dependencies"]["redis"]["status"] == "ok"
    assert body["dependencies"]["broker"] == {"status": "ok", "same_as": "redis"}

    settings.CACHES = redis_cache(DEAD_REDIS)
    settings.CELERY_BROKER_URL = DEAD_REDIS
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["service"] == "workstream"
    assert body["dependencies"]["redis"] == {"status": "error", "error": "ConnectionError"}
    assert body["dependencies"]["broker"] == {"status": "error", "same_as": "redis"}
    assert body["checks"] == {"database": body["dependencies"]["database"], "redis": body["dependencies"]["redis"]}


def test_live_asks_no_dependency_and_ready_only_what_is_used(client, nothing_else, settings):
    """The probes stay cheap: liveness runs no SQL and reaches no server, even with every
    dependency but the database dead; readiness asks the database with one SELECT 1."""
    settings.CACHES = redis_cache(DEAD_REDIS)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert len(queries) == 0, [q["sql"] for q in queries]
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/health/ready").status_code == 503  # the dead Redis
    assert [q["sql"] for q in queries] == ["SELECT 1"]
