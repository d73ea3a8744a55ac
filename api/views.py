"""The base of every API view: problem details, idempotency, ETag/If-Match helpers."""

from __future__ import annotations

from django.db import transaction
from rest_framework.views import APIView

from api import idempotency
from api.problems import ProblemException


class WorkstreamAPIView(APIView):
    """APIView plus Idempotency-Key handling on POST (one transaction with the change)."""

    _idem = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles
        if request.method == "POST":
            self._idem = idempotency.begin(request._request)

    def dispatch(self, request, *args, **kwargs):
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


def parse_if_match(request) -> int | None:
    """The version an `If-Match: "<version>"` header demands (strong comparison; RFC 9110).

    `*` and no header mean no precondition. A weak or malformed tag can never
    match a strong ETag, so it fails the precondition (412).
    """
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    tags = [t.strip() for t in header.split(",")]
    versions = []
    for tag in tags:
        if tag.startswith('"') and tag.endswith('"') and tag[1:-1].isdigit():
            versions.append(int(tag[1:-1]))
    if len(versions) == 1:
        return versions[0]
    raise ProblemException("stale-version", f"If-Match {header!r} does not match the current version")


def etag(version: int) -> str:
    return f'"{version}"'
