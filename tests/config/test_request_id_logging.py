"""`django.request` log lines carry the request's X-Request-ID.

Django logs a 4xx/5xx response after the middleware chain has returned (so after
RequestIdMiddleware has reset the request-id context); the records are captured through
a real handler with the project's filter and JSON formatter, as configured in LOGGING.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.conf import settings
from django.test import Client
from django.urls import path
from pythonjsonlogger.json import JsonFormatter

from config.context import RequestIdFilter
from config.urls import urlpatterns as project_urlpatterns


def boom(request):
    raise RuntimeError("boom")


urlpatterns = [path("test-boom", boom), *project_urlpatterns]


@pytest.fixture
def request_log():
    """The JSON lines `django.request` writes through a handler configured like LOGGING's console."""
    conf = {k: v for k, v in settings.LOGGING["formatters"]["json"].items() if k != "()"}
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter(**conf))
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("get", "/no-such-page", None, 404),  # Http404 from the resolver
        ("get", "/api/v1/workitems", None, 401),  # a DRF response, no exception
        ("post", "/api/v1/workitems", "x" * (2 * 1024 * 1024), 413),  # refused by a middleware
        ("get", "/test-boom", None, 500),  # an exception in the view
    ],
)
def test_django_request_lines_carry_the_callers_request_id(db, request_log, method, url, body, status):
    client = Client(raise_request_exception=False)
    kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
    resp = getattr(client, method)(url, headers={"X-Request-ID": "abc"}, **kwargs)
    assert resp.status_code == status
    assert resp["X-Request-ID"] == "abc"
    lines = [line for line in request_log() if line["logger"] == "django.request"]
    assert len(lines) == 1, lines
    assert lines[0]["status_code"] == status
    assert lines[0]["request_id"] == "abc", lines[0]


def test_a_record_outside_any_request_has_an_empty_request_id(request_log):
    logging.getLogger("django.request").warning("no request here")
    assert request_log()[-1]["request_id"] == ""
