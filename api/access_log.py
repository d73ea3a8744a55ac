"""The access log: one `audit.models.AccessRecord` for every request under /api/, refused ones too.

Placed right after the request-id middleware, so it sees every answer of the API: the views',
the throttle's and authentication's refusals, and the middleware's own (a switched-off API,
an oversized body). It records the caller (user, how they authenticated, the token's or key's
id), the operation (method and route pattern, e.g. `POST /api/v1/workitems/{item_id}/{action}`),
the resource (the route's parameters), the query parameters' names, the outcome (status and
problem type), the request id, the time and the duration. Never a body, a query value or a
header; the client address only with `accessLog.recordIp`.

One INSERT per request, after the response is made. A record that cannot be written is not
lost silently: it is logged as an error with every field (the logs are the second copy).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time

from django.db import DatabaseError, connection, transaction
from django.urls import Resolver404, resolve
from django.utils import timezone

from api.models import ServiceApiKey
from api.problems import CONTENT_TYPE, PROBLEM_BASE
from api.throttling import client_ip
from audit.models import AccessRecord
from config import sqlcache, wsconfig

log = logging.getLogger(__name__)

PREFIX = "/api/"
_PARAM = re.compile(r"<(?:[^>:]+:)?([^>]+)>")
_NAME = re.compile(r"^[A-Za-z0-9_.\-\[\]]{1,50}$")


def _clean(value):
    """A route parameter as stored: ints stay, text loses NUL (PostgreSQL refuses it) and is cut."""
    return value if isinstance(value, int) else str(value).replace("\x00", "")[:150]


def route_of(request):
    """(pattern as `/api/v1/workitems/{item_id}`, its parameters) of the request, ("", {}) if none."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return "", {}
    return "/" + _PARAM.sub(r"{\1}", match.route), {k: _clean(v) for k, v in match.kwargs.items()}


def param_names(request) -> list[str]:
    """The query parameters' names (what a caller filtered or paged by), never their values;
    a name that is not a plain identifier is written as "?"."""
    return sorted({name if _NAME.match(name) else "?" for name in request.GET})[:50]


def problem_kind(response) -> str:
    """The problem type of an error response, after the common base (`not-found`), else ""."""
    if response.status_code < 400 or not response.get("Content-Type", "").startswith(CONTENT_TYPE):
        return ""
    data = getattr(response, "data", None)
    if not isinstance(data, dict) and not response.streaming:
        try:
            data = json.loads(response.content)
        except ValueError:
            return ""
    kind = data.get("type") if isinstance(data, dict) else None
    return kind.removeprefix(PROBLEM_BASE)[:50] if isinstance(kind, str) else ""


def caller_of(request) -> tuple:
    """(user or None, auth method, credential id): never a secret, only a token's or key's id."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None, "", ""
    auth = getattr(request, "auth", None)
    if isinstance(auth, ServiceApiKey):
        return user, "api-key", f"api-key:{auth.prefix}"
    jti = getattr(auth, "payload", {}).get("jti") if auth is not None else None
    if jti is not None:
        return user, "jwt", f"jwt:{str(jti)[:90]}"
    return user, "session", ""


def address_of(request) -> str | None:
    """The client's address as the throttles see it (behind `rateLimits.trustedProxies`, the
    forwarded one), or None when there is no valid address."""
    try:
        return str(ipaddress.ip_address(client_ip(request)))
    except ValueError:
        return None


_FIELDS = [f for f in AccessRecord._meta.concrete_fields if not f.primary_key]
_INSERT = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608 - the model's own table and columns
    connection.ops.quote_name(AccessRecord._meta.db_table),
    ", ".join(connection.ops.quote_name(f.column) for f in _FIELDS),
    ", ".join(["%s"] * len(_FIELDS)),
)


def _insert(record: AccessRecord) -> None:
    """The record's INSERT. On PostgreSQL a prepared statement sent as is (no ORM compile, no
    RETURNING: nothing reads the id back), each value prepared by its field as the ORM would;
    the ORM's save elsewhere (the embedded SQLite default)."""
    if connection.vendor != "postgresql":
        record.save(force_insert=True)
        return
    values = [f.get_db_prep_save(getattr(record, f.attname), connection) for f in _FIELDS]
    with sqlcache.prepared_cursor() as cur:
        cur.execute(_INSERT, values)


def write_record(record: AccessRecord) -> None:
    """Store one access record (REST's middleware and the gRPC interceptor both write through
    here): a record the database refuses is logged in full, never lost silently, and never
    fails the request it describes."""
    try:
        if connection.in_atomic_block:  # only under a test's transaction: keep it usable on failure
            with transaction.atomic():
                _insert(record)
        else:
            _insert(record)
    except DatabaseError:
        fields = {f.attname: getattr(record, f.attname) for f in record._meta.fields if f.attname != "id"}
        log.exception("access record not written", extra={"access_record": json.dumps(fields, default=str)})


class AccessLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(PREFIX):
            return self.get_response(request)
        cfg = wsconfig.get().accessLog
        if not cfg.enabled:
            return self.get_response(request)
        at, started = timezone.now(), time.perf_counter()
        response = self.get_response(request)
        duration = int((time.perf_counter() - started) * 1000)
        route, resource = route_of(request)
        user, auth, credential = caller_of(request)
        write_record(
            AccessRecord(
                at=at,
                request_id=getattr(request, "request_id", ""),
                method=request.method[:10],
                route=route[:200],
                resource=resource,
                params=param_names(request),
                actor=user,
                actor_username=user.get_username() if user else "",
                auth=auth,
                credential=credential,
                status=response.status_code,
                problem=problem_kind(response),
                duration_ms=duration,
                ip=address_of(request) if cfg.recordIp else None,
            )
        )
        return response
