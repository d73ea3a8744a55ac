"""Per-request (or per-message, per-job) context carried into logs, audit and outbox rows.

Set by the request middleware, the inbound consumer and Celery jobs; read by
the service layer. contextvars keep concurrent requests apart in threads and
async code alike.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import uuid
from collections.abc import Iterator

CHANNELS = ("api", "admin", "event", "system", "console")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
channel_var: contextvars.ContextVar[str] = contextvars.ContextVar("channel", default="system")

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def clean_request_id(value: str | None) -> str:
    """Accept a caller's id when it is short and harmless, else make one (ids land in logs)."""
    if value and _SAFE_ID.match(value):
        return value
    return new_request_id()


def current_request_id() -> str:
    return request_id_var.get()


def current_channel() -> str:
    return channel_var.get()


@contextlib.contextmanager
def acting(*, channel: str, request_id: str | None = None) -> Iterator[str]:
    """Run a block as `channel` (api/admin/event/system/console) under one request id."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    rid = request_id or request_id_var.get() or new_request_id()
    t1 = channel_var.set(channel)
    t2 = request_id_var.set(rid)
    try:
        yield rid
    finally:
        channel_var.reset(t1)
        request_id_var.reset(t2)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record (empty outside a request).

    The id of the record's own request comes first: Django logs a 4xx/5xx response
    (`django.request`, `log_response`) in the handler after the whole middleware chain has
    returned, when `RequestIdMiddleware` has already reset the context; the record carries
    that request in `record.request`. Everything logged while the request runs reads the
    context.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request = getattr(record, "request", None)
            record.request_id = getattr(request, "request_id", "") or current_request_id()
        return True
