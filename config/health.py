"""Liveness and readiness: /health/live, /health/ready, /health."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from config import wsconfig


def _check_database() -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()


def _check_redis() -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _check_rabbitmq() -> None:
    from kombu import Connection

    with Connection(settings.AMQP_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


def readiness_checks() -> dict[str, callable]:
    checks = {"database": _check_database, "redis": _check_redis}
    events = wsconfig.get().features.events
    if events.publish or events.subscribe:
        checks["rabbitmq"] = _check_rabbitmq
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
