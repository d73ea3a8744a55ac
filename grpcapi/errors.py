"""Refusals as gRPC status codes: each problem kind (api.problems.KINDS, the REST status of each
domain error) has one code; the problem type URI travels in the trailing metadata `problem-type`
and the whole RFC 9457 problem body, as REST would answer it, as JSON in `problem-bin`."""

from __future__ import annotations

import json
import logging

import grpc
from django.db import DataError
from rest_framework import exceptions as drf

from api.problems import KINDS, ProblemException, domain_problem_body, problem_body
from config import retry
from workitems.errors import WorkstreamError

log = logging.getLogger(__name__)

C = grpc.StatusCode
CODES: dict[str, grpc.StatusCode] = {
    "validation-error": C.INVALID_ARGUMENT,
    "malformed-request": C.INVALID_ARGUMENT,
    "unauthorized": C.UNAUTHENTICATED,
    "not-allowed": C.PERMISSION_DENIED,
    "feature-disabled": C.PERMISSION_DENIED,
    "not-found": C.NOT_FOUND,
    "method-not-allowed": C.UNIMPLEMENTED,
    "not-acceptable": C.INVALID_ARGUMENT,
    # The item's state refuses the action: asking again will not help until something changes it.
    "invalid-transition": C.FAILED_PRECONDITION,
    "already-claimed": C.FAILED_PRECONDITION,
    "conflict": C.FAILED_PRECONDITION,
    "constraint-violated": C.FAILED_PRECONDITION,
    # A race lost (another request with the key runs; the version moved): read again and retry.
    "idempotency-in-flight": C.ABORTED,
    "stale-version": C.ABORTED,
    "length-required": C.INVALID_ARGUMENT,
    "payload-too-large": C.RESOURCE_EXHAUSTED,
    "unsupported-media-type": C.INVALID_ARGUMENT,
    "idempotency-key-reused": C.INVALID_ARGUMENT,
    "rate-limited": C.RESOURCE_EXHAUSTED,
    "server-error": C.INTERNAL,
    "transient-conflict": C.UNAVAILABLE,
    "encryption-unavailable": C.UNAVAILABLE,  # the key ring lacks a key: the operator has to fix it
}
assert set(CODES) == set(KINDS), "every problem kind needs its gRPC status code"


class Refused(Exception):
    """A problem to answer with: its body (api.problems.problem_body) and extra trailers."""

    def __init__(self, body: dict, trailers: tuple[tuple[str, str], ...] = ()):
        super().__init__(body["detail"])
        self.body = body
        self.trailers = trailers


def problem_of(exc: Exception, *, instance: str) -> Refused | None:
    """The problem an exception answers with; None for one that is a bug (the caller logs it)."""
    if isinstance(exc, Refused):
        return exc
    if isinstance(exc, WorkstreamError):
        return Refused(domain_problem_body(exc, instance=instance))
    if isinstance(exc, ProblemException):
        return Refused(problem_body(exc.kind, str(exc.detail), instance=instance, **exc.extra))
    if isinstance(exc, drf.Throttled):
        wait = "" if exc.wait is None else str(int(exc.wait + 0.999))
        return Refused(problem_body("rate-limited", str(exc.detail), instance=instance), (("retry-after", wait),))
    if isinstance(exc, drf.AuthenticationFailed | drf.NotAuthenticated):
        detail = exc.detail.get("detail", "") if isinstance(exc.detail, dict) else exc.detail
        return Refused(problem_body("unauthorized", str(detail), instance=instance))
    if isinstance(exc, drf.ValidationError):
        return Refused(problem_body("validation-error", str(exc.detail), instance=instance))
    if isinstance(exc, retry.TransientConflict):
        return Refused(
            problem_body("transient-conflict", str(exc), instance=instance, sqlstate=exc.sqlstate),
            (("retry-after", str(retry.RETRY_AFTER_SECONDS)),),
        )
    if isinstance(exc, DataError):
        return Refused(
            problem_body(
                "validation-error", "a value was refused by the database (bad characters or size)", instance=instance
            )
        )
    return None


def refusal(exc: Exception, *, instance: str) -> Refused:
    """The problem `exc` answers with; an exception that is no refusal is a bug: logged, and
    answered as `server-error` (INTERNAL) without its details."""
    refused = problem_of(exc, instance=instance)
    if refused is None:
        log.exception("gRPC %s failed", instance)
        detail = "the server failed; the request id identifies it in the logs"
        refused = Refused(problem_body("server-error", detail, instance=instance))
    return refused


def kind_of(refused: Refused) -> str:
    return refused.body["type"].rsplit("/", 1)[-1]


def abort(context: grpc.ServicerContext, refused: Refused):
    """End the call with the refusal's status code and trailers (raises)."""
    body = refused.body
    context.set_trailing_metadata(
        (
            ("problem-type", body["type"]),
            ("problem-bin", json.dumps(body, default=str).encode()),
            *((k, v) for k, v in refused.trailers if v),
        )
    )
    context.abort(CODES.get(kind_of(refused), C.UNKNOWN), body["detail"])
