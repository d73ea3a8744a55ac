"""GET /audit/access: the access log (api/access_log.py) for supervisors and admins."""

from __future__ import annotations

import re

import django_filters as df
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from api.problems import ProblemException
from api.schema import PROBLEM_RESPONSES
from audit.api import AuditListView
from audit.models import AccessRecord
from config.timefmt import isoformat_z

_STATUS = re.compile(r"^([1-5])(?:xx|([0-9]{2}))$")


class AccessFilter(df.FilterSet):
    user = df.CharFilter(field_name="actor_username", help_text="the caller's username")
    status = df.CharFilter(method="filter_status", help_text="an HTTP status (`403`) or a class (`4xx`)")
    method = df.CharFilter(help_text="`GET`, `POST`, …")
    route = df.CharFilter(help_text="a route pattern as recorded, e.g. `/api/v1/workitems/{item_id}/{action}`")
    problem = df.CharFilter(help_text="a problem type after the base, e.g. `not-found`")
    request_id = df.CharFilter()
    after = df.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    before = df.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AccessRecord
        fields: list[str] = []

    def filter_status(self, queryset, name, value):
        match = _STATUS.match(value)
        if not match:
            raise ProblemException(
                "validation-error",
                "status must be an HTTP status (100 to 599) or a class such as 4xx",
                errors=[{"field": "status", "message": "not a status or a class"}],
            )
        if match.group(2) is None:
            low = int(match.group(1)) * 100
            return queryset.filter(status__gte=low, status__lt=low + 100)
        return queryset.filter(status=int(value))


class AccessRecordOut(serializers.Serializer):
    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    request_id = serializers.CharField()
    operation = serializers.CharField(help_text="method and route pattern")
    method = serializers.CharField()
    route = serializers.CharField(help_text='"" when no route matched')
    resource = serializers.DictField(help_text="the route's parameters, e.g. {item_id: 42}")
    params = serializers.ListField(child=serializers.CharField(), help_text="query parameter names, never values")
    user = serializers.CharField(allow_null=True)
    auth = serializers.CharField(help_text="jwt, api-key, session, or empty (anonymous)")
    credential = serializers.CharField(help_text="the token's id (jwt:<jti>) or the key's prefix (api-key:<prefix>)")
    status = serializers.IntegerField()
    problem = serializers.CharField(help_text="the problem type of an error, after the base")
    duration_ms = serializers.IntegerField()
    ip = serializers.CharField(allow_null=True, help_text="only with accessLog.recordIp")


class AccessPageOut(serializers.Serializer):
    results = AccessRecordOut(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


def access_representation(r: AccessRecord) -> dict:
    return {
        "id": r.id,
        "at": isoformat_z(r.at),
        "request_id": r.request_id,
        "operation": r.operation,
        "method": r.method,
        "route": r.route,
        "resource": r.resource,
        "params": r.params,
        "user": r.actor_username or None,
        "auth": r.auth,
        "credential": r.credential,
        "status": r.status,
        "problem": r.problem,
        "duration_ms": r.duration_ms,
        "ip": r.ip,
    }


class AccessListView(AuditListView):
    filterset_class = AccessFilter
    model = AccessRecord
    represent = staticmethod(access_representation)

    def cursor_ordering(self, request):
        return ("-id",)

    @extend_schema(
        operation_id="audit_access_list",
        summary="The access log: every API request and its outcome, newest first",
        responses={200: AccessPageOut, **PROBLEM_RESPONSES(400, 401, 403, 429)},
    )
    def get(self, request):
        return super().get(request)
