"""Liveness and readiness: /health/live, /health/ready, /health."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

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


REDIS_CACHE = "django.core.cache.backends.redis.RedisCache"
REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://", "unix://")


def readiness_checks() -> dict[str, Callable[[], None]]:
    """The dependencies the configuration in force uses, and only those.

    - the database, always;
    - `redis`: the cache, when it is Redis (CACHE_BACKEND=redis, the default);
    - `rabbitmq`: the event bus (AMQP_URL), when events are published or consumed;
    - `broker`: Celery's broker (BROKER_URL), unless tasks run in-process
      (CELERY_TASK_ALWAYS_EAGER); not checked twice when it is one of the URLs above.

    `make run` (locmem cache, eager tasks, events off) thus checks the database alone.
    """
    checks: dict[str, Callable[[], None]] = {"database": _check_database}
    checked: set[str] = set()

    def add(name: str, url: str, check: Callable[[str], None]) -> None:
        if url not in checked:
            checked.add(url)
            checks[name] = partial(check, url)

    cache = settings.CACHES["default"]
    if cache["BACKEND"] == REDIS_CACHE:
        add("redis", cache["LOCATION"], _check_redis)
    events = wsconfig.get().features.events
    if events.publish or events.subscribe:
        add("rabbitmq", settings.AMQP_URL, _check_amqp)
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        broker = settings.CELERY_BROKER_URL
        add("broker", broker, _check_redis if broker.startswith(REDIS_SCHEMES) else _check_amqp)
    return checks


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


@never_cache
def live(request):
    return JsonResponse({"status": "ok"})


@never_cache
def ready(request):
    ok, results = run_checks()
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": results}, status=200 if ok else 503)


health = ready
