"""Exceptions: one class per problem kind of the API (RFC 9457 problem details).

The server answers errors with ``application/problem+json``; its ``type`` is a URI whose
last path segment names the kind (``https://workstream.dev/problems/invalid-transition``,
``/problems/invalid-transition`` and ``invalid-transition`` all mean the same). An unknown
kind falls back to the class for its HTTP status, then to :class:`ClientError` /
:class:`ServerError`, then to :class:`WorkstreamError`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AlreadyClaimedError",
    "BadRequestError",
    "ClientError",
    "ConcurrentModificationError",
    "ConflictError",
    "ConnectionFailedError",
    "ConstraintViolatedError",
    "IdempotencyInFlightError",
    "IdempotencyKeyReusedError",
    "InvalidTransitionError",
    "MalformedRequestError",
    "MethodNotAllowedError",
    "NotAcceptableError",
    "NotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PreconditionFailedError",
    "RateLimitedError",
    "ServerError",
    "StaleVersionError",
    "UnauthorizedError",
    "UnprocessableError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "WorkstreamError",
    "error_from_problem",
    "problem_kind",
]


class WorkstreamError(Exception):
    """Base of every error the SDK raises.

    Attributes mirror the problem details: ``status``, ``type``, ``title``, ``detail``,
    ``instance``, ``errors`` (``[{"field", "message"}]``), ``allowed_actions`` (for invalid
    transitions), ``problem`` (the whole body as a dict, extension members included), and
    ``request_id`` (the response's ``X-Request-ID``, to quote when reporting a problem).
    """

    kind: str | None = None
    default_status: int | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        status: int | None = None,
        type: str | None = None,
        title: str | None = None,
        instance: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        allowed_actions: list[str] | None = None,
        problem: dict[str, Any] | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status if status is not None else self.default_status
        self.type = type
        self.title = title
        self.detail = detail
        self.instance = instance
        self.errors = list(errors or [])
        self.allowed_actions = list(allowed_actions) if allowed_actions is not None else None
        self.problem = dict(problem or {})
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self._message())

    def _message(self) -> str:
        head = " ".join(str(p) for p in (self.status, self.title) if p)
        text = self.detail or ""
        if self.errors:
            fields = "; ".join(f"{e.get('field') or 'input'}: {e.get('message', '')}" for e in self.errors)
            text = f"{text} ({fields})" if text else fields
        msg = f"{head}: {text}" if head and text else head or text or self.__class__.__name__
        if self.request_id:
            msg += f" [request {self.request_id}]"
        return msg


class ConnectionFailedError(WorkstreamError):
    """The server could not be reached (connection refused, reset, timed out) after all retries.
    The underlying ``httpx`` exception is the ``__cause__``."""


class ClientError(WorkstreamError):
    """A 4xx answer of a kind this SDK does not know."""


class ServerError(WorkstreamError):
    """A 5xx answer (``server-error``, or 502/503/504 still failing after the retries)."""

    kind = "server-error"
    default_status = 500


class BadRequestError(ClientError):
    default_status = 400


class ValidationError(BadRequestError):
    """The input is invalid; ``errors`` names each bad field (``items[3].queue`` in bulk)."""

    kind = "validation-error"


class MalformedRequestError(BadRequestError):
    """The body is not parseable JSON (or not the expected shape at all)."""

    kind = "malformed-request"


class UnauthorizedError(ClientError):
    """No or bad credentials (401)."""

    kind = "unauthorized"
    default_status = 401


class NotAllowedError(ClientError):
    """Authenticated, but not allowed to do this (403)."""

    kind = "not-allowed"
    default_status = 403


class NotFoundError(ClientError):
    """Does not exist, or the caller may not see it (404)."""

    kind = "not-found"
    default_status = 404


class MethodNotAllowedError(ClientError):
    kind = "method-not-allowed"
    default_status = 405


class NotAcceptableError(ClientError):
    """The server cannot answer in a media type the request accepts (406)."""

    kind = "not-acceptable"
    default_status = 406


class ConflictError(ClientError):
    """Base of every 409."""

    default_status = 409


class InvalidTransitionError(ConflictError):
    """The lifecycle does not allow this action in the item's state; see ``allowed_actions``."""

    kind = "invalid-transition"


class AlreadyClaimedError(InvalidTransitionError):
    """Somebody else claimed the item first."""

    kind = "already-claimed"


class ConcurrentModificationError(ConflictError):
    """The write lost a race with another write (problem kind ``conflict``); re-read and retry."""

    kind = "conflict"


class ConstraintViolatedError(ConflictError):
    """A distribution constraint (capacity, separation of duties, exclusion, eligibility) forbids it."""

    kind = "constraint-violated"


class IdempotencyInFlightError(ConflictError):
    """A request with the same ``Idempotency-Key`` is still being processed."""

    kind = "idempotency-in-flight"


class PreconditionFailedError(ClientError):
    default_status = 412


class StaleVersionError(PreconditionFailedError):
    """``If-Match`` named a version that is not the item's current one (412)."""

    kind = "stale-version"


class PayloadTooLargeError(ClientError):
    kind = "payload-too-large"
    default_status = 413


class UnsupportedMediaTypeError(ClientError):
    kind = "unsupported-media-type"
    default_status = 415


class UnprocessableError(ClientError):
    default_status = 422


class IdempotencyKeyReusedError(UnprocessableError):
    """The same ``Idempotency-Key`` was sent earlier with a different body (422)."""

    kind = "idempotency-key-reused"


class RateLimitedError(ClientError):
    """Too many requests (429), still refused after the retries; ``retry_after`` is in seconds."""

    kind = "rate-limited"
    default_status = 429


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


BY_KIND: dict[str, type[WorkstreamError]] = {
    c.kind: c for c in _all_subclasses(WorkstreamError) if c.__dict__.get("kind") is not None
}

# Fallback by status: the most general class that has that default status.
BY_STATUS: dict[int, type[WorkstreamError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: NotAllowedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    406: NotAcceptableError,
    409: ConflictError,
    412: PreconditionFailedError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableError,
    429: RateLimitedError,
    500: ServerError,
}


def problem_kind(type_uri: str | None) -> str | None:
    """The kind named by a problem ``type``: its last path segment (query and fragment ignored)."""
    if not type_uri or not isinstance(type_uri, str):
        return None
    t = type_uri.split("#", 1)[0].split("?", 1)[0].rstrip("/")
    kind = t.rsplit("/", 1)[-1]
    return kind or None


def error_class_for(kind: str | None, status: int | None) -> type[WorkstreamError]:
    if kind and kind in BY_KIND:
        return BY_KIND[kind]
    if status is not None:
        if status in BY_STATUS:
            return BY_STATUS[status]
        if 400 <= status < 500:
            return ClientError
        if status >= 500:
            return ServerError
    return WorkstreamError


def error_from_problem(
    problem: dict[str, Any] | None,
    status: int | None = None,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> WorkstreamError:
    """Build the exception for a problem-details body (``status`` is the HTTP status, used when
    the body has none or is not a problem at all)."""
    problem = dict(problem or {})
    body_status = problem.get("status")
    if not isinstance(body_status, int):
        body_status = None
    http_status = status if status is not None else body_status
    type_uri = problem.get("type") if isinstance(problem.get("type"), str) else None
    cls = error_class_for(problem_kind(type_uri), http_status)
    errors = problem.get("errors")
    if not isinstance(errors, list):
        errors = None
    else:
        errors = [e if isinstance(e, dict) else {"field": "", "message": str(e)} for e in errors]
    allowed = problem.get("allowed_actions")
    if not isinstance(allowed, list):
        allowed = None

    def text(name: str) -> str | None:
        v = problem.get(name)
        return v if isinstance(v, str) else (None if v is None else str(v))

    return cls(
        text("detail"),
        status=http_status,
        type=type_uri,
        title=text("title"),
        instance=text("instance"),
        errors=errors,
        allowed_actions=allowed,
        problem=problem,
        request_id=request_id,
        retry_after=retry_after,
    )
