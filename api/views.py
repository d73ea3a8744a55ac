"""The base of every API view: problem details, idempotency, ETag/If-Match helpers."""

from __future__ import annotations

import re

from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import JsonResponse
from django.http.request import RawPostDataException
from rest_framework.views import APIView

from api import idempotency
from api.problems import CONTENT_TYPE, ProblemException, problem_body
from config import retry


class WorkstreamAPIView(APIView):
    """APIView plus Idempotency-Key handling on POST (one transaction with the change) and
    transient database conflicts retried around the outermost transaction."""

    _idem = None
    _attempt = 0

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        if request.method == "POST":
            self._idem = idempotency.begin(request._request)

    def dispatch(self, request, *args, **kwargs):
        """The request, run again from the start (config.retry) when it met a deadlock, a
        serialization failure or a lock timeout; 503 `transient-conflict` after the last try."""
        try:
            request.body  # noqa: B018 - read and kept now, so that a second attempt parses it again
        except (RequestDataTooBig, RawPostDataException, OSError):
            return self._dispatch_once(request, *args, **kwargs)  # unreadable: DRF reports it
        self._attempt = 0
        try:
            return retry.retry_transient(lambda: self._dispatch_once(request, *args, **kwargs), where="api")
        except retry.TransientConflict as exc:
            body = problem_body("transient-conflict", str(exc), instance=request.path, sqlstate=exc.sqlstate)
            response = JsonResponse(body, status=body["status"], content_type=CONTENT_TYPE)
            response["Retry-After"] = str(retry.RETRY_AFTER_SECONDS)
            return response

    def check_throttles(self, request):
        if self._attempt <= 1:  # a retried attempt is the same request: it counts once
            super().check_throttles(request)

    def _dispatch_once(self, request, *args, **kwargs):
        self._attempt += 1
        self._idem = None
        if request.method != "POST" or idempotency.HEADER not in request.headers:
            return super().dispatch(request, *args, **kwargs)
        try:
            with transaction.atomic():
                response = super().dispatch(request, *args, **kwargs)
                if self._idem is not None and 200 <= response.status_code < 300:
                    idempotency.store(self._idem, response)
            return response
        except idempotency.Replay as replay:
            return idempotency.replay_response(replay.record)


# A version is a PositiveIntegerField: at most 10 ASCII digits. Any other tag (W/"3", "١٢",
# "²", a thousand digits) is an entity tag no item ever has, so it fails the precondition.
_VERSION_TAG = re.compile(r'"([0-9]{1,10})"')


def parse_if_match(request) -> int | None:
    """The version an `If-Match: "<version>"` header demands (strong comparison; RFC 9110).

    `*` and no header mean no precondition. A weak, malformed or impossible tag can never
    match a strong ETag, so it fails the precondition (412), naming what it expected.
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tags = [t.strip() for t in header.split(",")]
    versions = [int(m.group(1)) for m in map(_VERSION_TAG.fullmatch, tags) if m]
    if len(versions) == 1:
        return versions[0]
    shown = header if len(header) <= 80 else header[:80] + "…"
    raise ProblemException(
        "stale-version",
        f"If-Match {shown!r} does not match the current version: send one strong tag, "
        'the ETag as it was given ("<version>", ASCII digits)',
    )


def etag(version: int) -> str:
    return f'"{version}"'
