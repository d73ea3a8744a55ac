"""Problem details → exceptions (no server needed)."""

from __future__ import annotations

import httpx
import pytest
import workstream_client as wc
from workstream_client._core import BaseClient
from workstream_client.errors import error_from_problem, problem_kind

BASE = "https://workstream.dev/problems/"

KINDS = [
    ("validation-error", 400, wc.ValidationError),
    ("malformed-request", 400, wc.MalformedRequestError),
    ("unauthorized", 401, wc.UnauthorizedError),
    ("not-allowed", 403, wc.NotAllowedError),
    ("not-found", 404, wc.NotFoundError),
    ("method-not-allowed", 405, wc.MethodNotAllowedError),
    ("not-acceptable", 406, wc.NotAcceptableError),
    ("invalid-transition", 409, wc.InvalidTransitionError),
    ("already-claimed", 409, wc.AlreadyClaimedError),
    ("conflict", 409, wc.ConcurrentModificationError),
    ("constraint-violated", 409, wc.ConstraintViolatedError),
    ("idempotency-in-flight", 409, wc.IdempotencyInFlightError),
    ("stale-version", 412, wc.StaleVersionError),
    ("payload-too-large", 413, wc.PayloadTooLargeError),
    ("unsupported-media-type", 415, wc.UnsupportedMediaTypeError),
    ("idempotency-key-reused", 422, wc.IdempotencyKeyReusedError),
    ("rate-limited", 429, wc.RateLimitedError),
    ("server-error", 500, wc.ServerError),
]


@pytest.mark.parametrize(("kind", "status", "cls"), KINDS)
def test_each_kind_maps_to_its_class(kind, status, cls):
    problem = {"type": BASE + kind, "title": "T", "status": status, "detail": "D", "instance": "/api/v1/x"}
    err = error_from_problem(problem, status)
    assert type(err) is cls
    assert isinstance(err, wc.WorkstreamError)
    assert (err.status, err.type, err.title, err.detail, err.instance) == (status, BASE + kind, "T", "D", "/api/v1/x")
    assert err.problem == problem
    assert cls.kind == kind


@pytest.mark.parametrize(
    "type_uri",
    [
        BASE + "not-found",
        "/problems/not-found",
        "problems/not-found",
        "not-found",
        BASE + "not-found/",
        BASE + "not-found#x",
        "tag:workstream.dev,2026:problems/not-found",
    ],
)
def test_kind_is_the_last_path_segment(type_uri):
    assert problem_kind(type_uri) == "not-found"
    assert isinstance(error_from_problem({"type": type_uri}, 404), wc.NotFoundError)


def test_problem_kind_of_nothing():
    assert problem_kind(None) is None
    assert problem_kind("") is None
    assert problem_kind("/") is None


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, wc.BadRequestError),
        (401, wc.UnauthorizedError),
        (404, wc.NotFoundError),
        (409, wc.ConflictError),
        (412, wc.PreconditionFailedError),
        (422, wc.UnprocessableError),
        (429, wc.RateLimitedError),
        (418, wc.ClientError),
        (500, wc.ServerError),
        (502, wc.ServerError),
        (503, wc.ServerError),
    ],
)
def test_unknown_kind_falls_back_by_status(status, cls):
    err = error_from_problem({"type": BASE + "something-new", "title": "New"}, status)
    assert type(err) is cls
    assert err.status == status
    assert type(error_from_problem({"type": "about:blank"}, status)) is cls


def test_status_from_body_when_no_http_status():
    assert type(error_from_problem({"type": "x/unknown", "status": 409})) is wc.ConflictError
    assert type(error_from_problem({})) is wc.WorkstreamError


def test_hierarchy_groups_the_409s_and_412():
    for cls in (
        wc.InvalidTransitionError,
        wc.AlreadyClaimedError,
        wc.ConcurrentModificationError,
        wc.ConstraintViolatedError,
        wc.IdempotencyInFlightError,
    ):
        assert issubclass(cls, wc.ConflictError)
    assert issubclass(wc.AlreadyClaimedError, wc.InvalidTransitionError)
    assert issubclass(wc.StaleVersionError, wc.PreconditionFailedError)
    assert issubclass(wc.ValidationError, wc.BadRequestError)
    assert issubclass(wc.MalformedRequestError, wc.BadRequestError)
    assert issubclass(wc.IdempotencyKeyReusedError, wc.UnprocessableError)
    assert not issubclass(wc.ServerError, wc.ClientError)


def test_validation_errors_and_allowed_actions_are_kept():
    err = error_from_problem(
        {
            "type": BASE + "validation-error",
            "title": "Invalid input",
            "status": 400,
            "detail": "items[2].queue: unknown queue",
            "errors": [{"field": "items[2].queue", "message": "unknown queue"}],
        },
        400,
        request_id="req-1",
    )
    assert err.errors == [{"field": "items[2].queue", "message": "unknown queue"}]
    assert "items[2].queue" in str(err) and "req-1" in str(err)
    assert err.allowed_actions is None

    err = error_from_problem(
        {"type": BASE + "invalid-transition", "status": 409, "allowed_actions": ["start", "release"], "state": "X"},
        409,
    )
    assert err.allowed_actions == ["start", "release"]
    assert err.problem["state"] == "X"  # extension members stay reachable
    assert err.errors == []


def test_malformed_members_do_not_break_mapping():
    err = error_from_problem({"type": 5, "errors": "nope", "allowed_actions": "x", "detail": 7}, 409)
    assert type(err) is wc.ConflictError
    assert err.errors == [] and err.allowed_actions is None and err.detail == "7"


def _response(status, content=b"", content_type=None, headers=None):
    h = dict(headers or {})
    if content_type:
        h["Content-Type"] = content_type
    return httpx.Response(status, content=content, headers=h, request=httpx.Request("GET", "http://x/"))


def test_error_for_problem_json_response():
    body = b'{"type": "/problems/stale-version", "title": "t", "status": 412, "detail": "d", "current_version": 3}'
    err = BaseClient.error_for(_response(412, body, "application/problem+json", {"X-Request-ID": "abc"}))
    assert type(err) is wc.StaleVersionError
    assert err.request_id == "abc" and err.problem["current_version"] == 3


def test_error_for_non_json_response():
    err = BaseClient.error_for(_response(502, b"<html>Bad gateway</html>", "text/html"))
    assert type(err) is wc.ServerError
    assert err.status == 502 and err.title == "Bad Gateway" and "Bad gateway" in err.detail


def test_error_for_rate_limited_carries_retry_after():
    err = BaseClient.error_for(
        _response(429, b'{"type": "x/rate-limited"}', "application/problem+json", {"Retry-After": "7"})
    )
    assert type(err) is wc.RateLimitedError and err.retry_after == 7.0


def test_error_for_empty_body():
    err = BaseClient.error_for(_response(404))
    assert type(err) is wc.NotFoundError and err.detail is None
