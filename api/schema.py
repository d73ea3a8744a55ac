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


def bounded_int_parameter(name: str, top: int, description: str) -> OpenApiParameter:
    """A query parameter that must be an integer from 1 to `top`, declared with those bounds."""
    return OpenApiParameter(name, {"type": "integer", "minimum": 1, "maximum": top}, description=description)


def page_size_parameter() -> OpenApiParameter:
    """`page_size` with the bounds the paginator enforces (1 to performance.maxPageSize)."""
    top = wsconfig.get().performance.maxPageSize
    return bounded_int_parameter("page_size", top, f"1–{top}, default 50")


IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
    OpenApiParameter.HEADER,
    description="replays the first answer for the same key and body for 24 h",
)


# Every time the API takes is one of 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z
# (workitems/schemas.py); the document says so with the years a time may start with.
TIME_PATTERN = r"^(19[7-9][0-9]|2[0-9]{3})-"

# A duration the API takes (a queue's `sla`, `reservation_timeout`) is a positive ISO 8601 duration
# of at most 366 days (workitems/schemas.py MAX_DURATION); the document shows its canonical form:
# days 1–365, hours 1–23, minutes and seconds 1–59, each optional but one at least (`PT4H`,
# `P2DT12H`). The server also takes other spellings within the same bounds (`PT48H`).
_DAYS = r"(?:[1-9]|[1-9][0-9]|[12][0-9][0-9]|3[0-5][0-9]|36[0-5])D"
_H, _M = r"(?:[1-9]|1[0-9]|2[0-3])H", r"(?:[1-9]|[1-5][0-9])"
_TIME = rf"T(?:{_H}(?:{_M}M)?(?:{_M}S)?|{_M}M(?:{_M}S)?|{_M}S)"
DURATION_PATTERN = rf"^P(?:{_DAYS}(?:{_TIME})?|{_TIME})$"


def closed_request_bodies(result, generator, request, public):
    """drf-spectacular post-processing hook: every request body says what the server enforces.

    - Each request object is closed (`additionalProperties: false`): the server refuses a member
      it does not know with a 400 that names it (a typo must not pass silently as a default);
      free-form members (`context_data`, `result`, …) declare their own open object schema.
    - A body with required members is itself required (an absent body is refused).
    - A time (`format: date-time`) is one of the years the server takes (TIME_PATTERN), a
      duration (`format: duration`) one of the lengths (DURATION_PATTERN).
    tests/api/test_schemathesis.py checks both directions: what the document refuses, the server
    refuses, and what it accepts, the server does not refuse as invalid."""
    schemas = result.get("components", {}).get("schemas", {})

    def resolve(schema):
        if isinstance(schema, dict) and "$ref" in schema:
            return schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return schema if isinstance(schema, dict) else {}

    def walk(schema, seen):
        if not isinstance(schema, dict):
            return
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                walk(schemas.get(name), seen)
            return
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)
        if schema.get("type") == "string" and schema.get("format") == "date-time":
            schema.setdefault("pattern", TIME_PATTERN)
        if schema.get("type") == "string" and schema.get("format") == "duration":
            schema.setdefault("pattern", DURATION_PATTERN)
        for key in ("properties",):
            for sub in schema.get(key, {}).values():
                walk(sub, seen)
        for key in ("items", "additionalProperties"):
            walk(schema.get(key), seen)
        for key in ("oneOf", "anyOf", "allOf"):
            for sub in schema.get(key, []):
                walk(sub, seen)

    def required(schema) -> bool:
        schema = resolve(schema)
        if schema.get("oneOf"):
            return all(required(s) for s in schema["oneOf"])
        return bool(schema.get("required"))

    seen: set[str] = set()
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "requestBody" not in operation:
                continue
            body = operation["requestBody"]
            for media in body.get("content", {}).values():
                walk(media.get("schema"), seen)
                if required(media.get("schema")):
                    body["required"] = True
    return result
