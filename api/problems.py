"""RFC 9457 problem details for every error the API returns.

Domain errors (workitems.errors) and DRF's own exceptions are mapped here,
once, to a stable `type` URI per kind, `title`, `status`, `detail`,
`instance`, and `errors: [{field, message}]` for validation problems.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.db import DataError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from workitems import errors as domain

log = logging.getLogger(__name__)

PROBLEM_BASE = "https://workstream.dev/problems/"
CONTENT_TYPE = "application/problem+json"

# kind → (status, title)
KINDS: dict[str, tuple[int, str]] = {
    "validation-error": (400, "Invalid input"),
    "malformed-request": (400, "Malformed request"),
    "unauthorized": (401, "Authentication required"),
    "not-allowed": (403, "Not allowed"),
    "feature-disabled": (403, "Switched off in the configuration"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "not-acceptable": (406, "Not acceptable"),
    "invalid-transition": (409, "Invalid transition"),
    "already-claimed": (409, "Already claimed"),
    "conflict": (409, "Conflict"),
    "constraint-violated": (409, "Constraint violated"),
    "idempotency-in-flight": (409, "Request with this Idempotency-Key is in progress"),
    "length-required": (411, "Length required"),
    "stale-version": (412, "Precondition failed: stale version"),
    "payload-too-large": (413, "Payload too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "idempotency-key-reused": (422, "Idempotency-Key reused with a different request"),
    "rate-limited": (429, "Too many requests"),
    "server-error": (500, "Internal server error"),
    "transient-conflict": (503, "Transient database conflict; nothing was changed, try again"),
    "encryption-unavailable": (503, "Encrypted context keys cannot be read or written with this key ring"),
}


def type_uri(kind: str) -> str:
    return PROBLEM_BASE + kind


class ProblemException(drf.APIException):
    """An API-layer error with a problem kind (idempotency, preconditions, body size…)."""

    def __init__(self, kind: str, detail: str, *, headers: dict | None = None, **extra):
        self.kind = kind
        self.status_code = KINDS[kind][0]
        self.extra = extra
        self.headers = headers or {}
        super().__init__(detail)


def problem_body(kind: str, detail: str, *, instance: str = "", status: int | None = None, **extra) -> dict:
    default_status, title = KINDS[kind]
    body = {
        "type": type_uri(kind),
        "title": title,
        "status": status or default_status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extra)
    return body


def problem_response(kind: str, detail: str, *, request=None, headers=None, **extra) -> Response:
    body = problem_body(kind, detail, instance=request.path if request is not None else "", **extra)
    resp = Response(body, status=body["status"], headers=headers, content_type=CONTENT_TYPE)
    return resp


def _flatten(detail, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested ValidationError detail → [{field, message}]."""
    out: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            field = f"{prefix}.{name}" if prefix and name else (prefix or name)
            out.extend(_flatten(value, field))
    elif isinstance(detail, list):
        if all(not isinstance(v, dict | list) for v in detail):
            out.extend({"field": prefix, "message": str(v)} for v in detail)
        else:
            for i, value in enumerate(detail):
                out.extend(_flatten(value, f"{prefix}[{i}]"))
    else:
        out.append({"field": prefix, "message": str(detail)})
    return out


def domain_problem_fields(exc: domain.WorkstreamError) -> tuple[str, str, dict]:
    """(kind, detail, extra members) of the problem a domain error answers with."""
    if isinstance(exc, domain.ValidationFailed):
        return "validation-error", exc.detail, {"errors": exc.errors}
    if isinstance(exc, domain.InvalidTransition):
        return exc.kind, exc.detail, {"state": exc.state, "action": exc.action, "allowed_actions": exc.allowed_actions}
    if isinstance(exc, domain.StaleVersion):
        # Only an If-Match precondition sets an expected version, so this is always a 412;
        # a race lost without one surfaces as already-claimed / invalid-transition (409).
        return "stale-version", exc.detail, {"current_version": exc.current}
    if isinstance(exc, domain.ConstraintViolated):
        return "constraint-violated", exc.detail, {"constraint": exc.constraint}
    if isinstance(exc, domain.FeatureDisabled):
        return exc.kind, exc.detail, {"toggle": exc.toggle}
    return exc.kind, exc.detail, {}


def domain_problem_body(exc: domain.WorkstreamError, *, instance: str = "") -> dict:
    """The problem body of a domain error (bulk actions list one per refused item)."""
    kind, detail, extra = domain_problem_fields(exc)
    return problem_body(kind, detail, instance=instance, **extra)


def _domain_to_problem(exc: domain.WorkstreamError, request) -> Response:
    kind, detail, extra = domain_problem_fields(exc)
    return problem_response(kind, detail, request=request, **extra)


_DRF_KINDS = {
    drf.ParseError: "malformed-request",
    drf.NotAuthenticated: "unauthorized",
    drf.AuthenticationFailed: "unauthorized",
    drf.PermissionDenied: "not-allowed",
    drf.NotFound: "not-found",
    drf.MethodNotAllowed: "method-not-allowed",
    drf.NotAcceptable: "not-acceptable",
    drf.UnsupportedMediaType: "unsupported-media-type",
    drf.Throttled: "rate-limited",
}


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every error becomes a problem detail."""
    request = context.get("request")
    if isinstance(exc, domain.WorkstreamError):
        return _domain_to_problem(exc, request)
    if isinstance(exc, ProblemException):
        return problem_response(exc.kind, str(exc.detail), request=request, headers=exc.headers, **exc.extra)
    if isinstance(exc, DataError):
        # The last line of defence: input the validators let through and the database refused.
        log.warning("database refused a value: %s", type(exc).__name__)
        return problem_response(
            "validation-error", "a value was refused by the database (bad characters or size)", request=request
        )
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, drf.ValidationError):
        errors = _flatten(exc.detail)
        first = errors[0] if errors else {"field": "", "message": "invalid input"}
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return problem_response("validation-error", detail, request=request, errors=errors)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API exception: Django's 500 handling (server_error below) takes it
    kind = next((k for cls, k in _DRF_KINDS.items() if isinstance(exc, cls)), None)
    if kind is None:
        kind = {400: "malformed-request", 401: "unauthorized", 403: "not-allowed", 404: "not-found"}.get(
            response.status_code, "server-error" if response.status_code >= 500 else "malformed-request"
        )
    detail = exc.detail
    if isinstance(detail, dict):  # simplejwt's InvalidToken: {"detail": …, "code": …, "messages": […]}
        detail = detail.get("detail") or next(iter(detail.values()), "")
    elif isinstance(detail, list):
        detail = "; ".join(str(d) for d in detail)
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
    resp = problem_response(kind, str(detail), request=request, headers=headers)
    resp.status_code = response.status_code
    resp.data["status"] = response.status_code
    return resp


def _plain_problem(request, kind: str, detail: str) -> JsonResponse:
    body = problem_body(kind, detail, instance=request.path)
    return JsonResponse(body, status=body["status"], content_type=CONTENT_TYPE)


def handler404(request, exception=None):
    return _plain_problem(request, "not-found", "no such resource")


def handler500(request):
    return _plain_problem(request, "server-error", "the server failed; the request id identifies it in the logs")


def handler400(request, exception=None):
    return _plain_problem(request, "malformed-request", str(exception) if exception else "bad request")


def handler403(request, exception=None):
    return _plain_problem(request, "not-allowed", "forbidden")
