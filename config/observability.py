"""Request ids in every log line and response, and the project's own metrics.

`/metrics` (`metrics_view`) shows the whole server. Under gunicorn (config/gunicorn.conf.py)
every worker process writes its counters and histograms to files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode), and a scrape, whichever
worker answers it, adds up the files of all of them. Without that variable (`make run`,
runserver, tests) the process's default registry is served, as the relay's and consumers'
`--metrics-port` endpoints always do.
Scrapes are not public (`scrape_refused`): with METRICS_TOKEN set they send it as a bearer token;
without one the endpoint is closed unless METRICS_PUBLIC (on by default under DEBUG and tests only).
A Gauge made here would need a `multiprocess_mode` ("livesum", "max", …); the only gauges
today are the outbox backlog gauges and the queue gauges (stats/metrics.py), which are read
from the database at scrape time.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

from config import context
from events.metrics import OutboxCollector
from stats.metrics import QueueCollector

_LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

WORKITEM_CREATE_LATENCY_MS = Histogram(
    "workitem_create_latency_ms", "Time to create (and distribute) one work item, in ms", buckets=_LATENCY_BUCKETS_MS
)
WORKITEM_COMPLETE_LATENCY_MS = Histogram(
    "workitem_complete_latency_ms", "Time to complete one work item, in ms", buckets=_LATENCY_BUCKETS_MS
)
CLAIM_CONFLICTS_TOTAL = Counter("claim_conflicts_total", "Claims lost to another claimer or a stale version")
WORKITEM_TRANSITIONS_TOTAL = Counter("workitem_transitions_total", "Work-item commands applied", ["action"])


def multiprocess_dir() -> str:
    """The multiprocess directory prometheus_client uses, or "" when it is off."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def metrics_registry():
    """The registry a scrape reads: all worker processes' files in multiprocess mode (plus the
    collectors that read their values at scrape time), else this process's default registry."""
    if not multiprocess_dir():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(OutboxCollector())
    registry.register(QueueCollector())
    return registry


def scrape_refused(request) -> JsonResponse | None:
    """Why this request may not read /metrics (a 401 or 403 problem), or None when it may.

    With METRICS_TOKEN set a scrape must send `Authorization: Bearer <token>` (Prometheus:
    `authorization: {credentials_file: …}`); without one the endpoint is closed (403) unless
    METRICS_PUBLIC is on, its default under DEBUG and the test suite only (config/settings.py).
    """
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        detail = "/metrics needs the scrape token: send Authorization: Bearer <METRICS_TOKEN>"
        refused = _problem(request, 401, "unauthorized", "Authentication required", detail)
        refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    if settings.METRICS_PUBLIC:
        return None
    detail = "/metrics is closed: set METRICS_TOKEN (Prometheus sends it as a bearer token) or METRICS_PUBLIC=true"
    return _problem(request, 403, "not-allowed", "Not allowed", detail)


def _problem(request, status: int, kind: str, title: str, detail: str) -> JsonResponse:
    """The problem detail api.problems.problem_body writes for `kind`. Not imported from there:
    api.problems imports DRF's views, which import the API's throttle and renderer modules, which
    import api.problems; the services import this module, and must not start that cycle."""
    body = {
        "type": f"https://workstream.dev/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    return JsonResponse(body, status=status, content_type="application/problem+json")


def metrics_view(request):
    """GET /metrics in the Prometheus text format, for scrapers `scrape_refused` lets in."""
    return scrape_refused(request) or HttpResponse(
        generate_latest(metrics_registry()), content_type=CONTENT_TYPE_LATEST
    )


class RequestIdMiddleware:
    """Take `X-Request-ID` from the request (or make one), expose it to logs, audit and
    outbox rows for the request's duration, and echo it on the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        rid = context.clean_request_id(request.headers.get("X-Request-ID"))
        channel = "admin" if request.path.startswith("/admin/") else "api"
        with context.acting(channel=channel, request_id=rid):
            request.request_id = rid
            response = self.get_response(request)
        response["X-Request-ID"] = rid
        return response
