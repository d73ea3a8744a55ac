"""OpenAPI pieces shared by the views: the problem-details schema and error responses."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from api.idempotency import HEADER, MAX_KEY
from api.problems import CONTENT_TYPE, KINDS, type_uri
from config import wsconfig


class FieldErrorOut(serializers.Serializer):
    field = serializers.CharField()
    message = serializers.CharField()


class ProblemOut(serializers.Serializer):
    """RFC 9457 problem details (`application/problem+json`)."""

    type = serializers.URLField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    instance = serializers.CharField()
    errors = FieldErrorOut(many=True, required=False)
    allowed_actions = serializers.ListField(child=serializers.CharField(), required=False)
    state = serializers.CharField(required=False)
    action = serializers.CharField(required=False)
    current_version = serializers.IntegerField(required=False)
    constraint = serializers.CharField(required=False)


_KINDS_BY_STATUS: dict[int, list[str]] = {}
for _kind, (_status, _title) in KINDS.items():
    _KINDS_BY_STATUS.setdefault(_status, []).append(_kind)


def problem(status: int) -> OpenApiResponse:
    kinds = _KINDS_BY_STATUS[status]
    return OpenApiResponse(
        response=ProblemOut,
        description=" / ".join(KINDS[k][1] for k in kinds),
        examples=[
            OpenApiExample(
                k,
                value={
                    "type": type_uri(k),
                    "title": KINDS[k][1],
                    "status": status,
                    "detail": KINDS[k][1],
                    "instance": "/api/v1/…",
                },
                response_only=True,
                status_codes=[str(status)],
            )
            for k in kinds
        ],
    )


def PROBLEM_RESPONSES(*statuses: int) -> dict:  # noqa: N802 - reads as a constant
    """Error responses for `extend_schema`, declared with the media type they are sent with."""
    return {(code, CONTENT_TYPE): problem(code) for code in statuses}


def page_size_parameter() -> OpenApiParameter:
    """`page_size` with the bounds the paginator enforces (1 to performance.maxPageSize)."""
    top = wsconfig.get().performance.maxPageSize
    return OpenApiParameter(
        "page_size",
        {"type": "integer", "minimum": 1, "maximum": top},
        description=f"1–{top}, default 50",
    )


IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
    OpenApiParameter.HEADER,
    description="replays the first answer for the same key and body for 24 h",
)
