"""Liveness and readiness: /health/live, /health/ready, /health."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from config import wsconfig


def _check_database() -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()


def _check_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _check_amqp(url: str) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


SERVICE_NAME = "workstream"
REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://", "unix://")


@dataclass(frozen=True)
class Dependency:
    """One dependency as the configuration in force uses it: checked (`check`), shared with the
    one named `same_as` (one URL, checked once), or not used at all (both None)."""

    check: Callable[[], None] | None = None
    same_as: str | None = None


def dependencies() -> dict[str, Dependency]:
    """Every dependency the service can have, and how the configuration in force uses it.

    - the database, always;
    - `redis`: the cache, when it is Redis (CACHE_BACKEND=redis, the default);
    - `rabbitmq`: the event bus (AMQP_URL), when events are published or consumed;
    - `broker`: Celery's broker (BROKER_URL), unless tasks run in-process
      (CELERY_TASK_ALWAYS_EAGER); not checked twice when it is one of the URLs above.

    `make run` (locmem cache, eager tasks, events off) thus uses the database alone.
    """
    deps: dict[str, Dependency] = {"database": Dependency(_check_database)}
    checked: dict[str, str] = {}  # URL → the name it is checked under

    def add(name: str, url: str | None, check: Callable[[str], None]) -> None:
        if url is None:
            deps[name] = Dependency()
        elif url in checked:
            deps[name] = Dependency(same_as=checked[url])
        else:
            checked[url] = name
            deps[name] = Dependency(partial(check, url))

    cache = settings.CACHES["default"]
    add("redis", cache["LOCATION"] if cache["BACKEND"] == REDIS_CACHE else None, _check_redis)
    events = wsconfig.get().features.events
    add("rabbitmq", settings.AMQP_URL if events.publish or events.subscribe else None, _check_amqp)
    broker = None if settings.CELERY_TASK_ALWAYS_EAGER else settings.CELERY_BROKER_URL
    add("broker", broker, _check_redis if (broker or "").startswith(REDIS_SCHEMES) else _check_amqp)
    return deps


def readiness_checks() -> dict[str, Callable[[], None]]:
    """The checks of the dependencies the configuration in force uses, and only those
    (`dependencies`: each URL once)."""
    return {name: dep.check for name, dep in dependencies().items() if dep.check is not None}


def run_checks() -> tuple[bool, dict]:
    results, ok = {}, True
    for name, check in readiness_checks().items():
        t0 = time.perf_counter()
        try:
            check()
            results[name] = {"status": "ok", "ms": round((time.perf_counter() - t0) * 1000, 1)}
        except Exception as exc:  # a failed dependency is a result here, not an error
            ok = False
            results[name] = {"status": "error", "error": type(exc).__name__}
    return ok, results


@cache
def service_version() -> str:
    """The release running: pyproject.toml's version (the image copies the file), read once."""
    try:
        with (settings.BASE_DIR / "pyproject.toml").open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


@never_cache
def live(request):
    """The process answers: no dependency is asked (the liveness probe's target)."""
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request):
    """What the configuration in force uses answers (the readiness probe's target): 503 naming the failing check."""
    ok, results = run_checks()
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503)


@never_cache
def health(request):
    """/health/ready's checks and status, with the service's name and version and the state of
    every dependency it can have: `ok`/`error` for those checked (with the time taken), the
    state of the one it shares a URL with for `same_as`, `unused` for what the configuration
    leaves out (events off: no RabbitMQ; eager tasks: no broker; a local cache: no Redis)."""
    ok, results = run_checks()
    states = {}
    for name, dep in dependencies().items():
        if dep.check is not None:
            states[name] = results[name]
        elif dep.same_as is not None:
            states[name] = {"status": results[dep.same_as]["status"], "same_as": dep.same_as}
        else:
            states[name] = {"status": "unused"}
    body = {
        "service": SERVICE_NAME,
        "version": service_version(),
        "status": "ok" if ok else "unavailable",
        "checks": results,
        "dependencies": states,
    }
    return JsonResponse(body, status=200 if ok else 503)
