"""GET /audit and GET /audit/verify (supervisors and admins)."""

from __future__ import annotations

import django_filters as df
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from api.pagination import Cursor
from api.problems import ProblemException
from api.schema import PROBLEM_RESPONSES
from api.views import WorkstreamAPIView
from audit.models import AuditRecord
from audit.services import audit_verify
from config.db_router import reporting
from workitems.api.serializers import AuditRecordOut, audit_representation
from workitems.filters import TimeFilter
from workitems.policy import is_supervisor


class IsSupervisor(BasePermission):
    message = "the audit trail is for supervisors and admins"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and is_supervisor(request.user))


class AuditFilter(df.FilterSet):
    work_item = df.NumberFilter(field_name="work_item_id")
    actor = df.CharFilter(field_name="actor_username")
    action = df.CharFilter()
    stream = df.CharFilter()
    after = TimeFilter(field_name="created_at", lookup_expr="gte")
    before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditRecord
        fields: list[str] = []


class AuditPageOut(serializers.Serializer):
    results = AuditRecordOut(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class ChainReportOut(serializers.Serializer):
    ok = serializers.BooleanField()
    records_checked = serializers.IntegerField()
    streams_checked = serializers.IntegerField()
    broken_id = serializers.IntegerField(allow_null=True)
    broken_stream = serializers.CharField(allow_null=True)
    broken_seq = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()
    heads_checked = serializers.IntegerField()
    checkpoint_id = serializers.IntegerField(allow_null=True)
    checkpoint_at = serializers.DateTimeField(allow_null=True)


class AuditListView(WorkstreamAPIView):
    """A filtered, cursor-paginated listing of `model` (audit/access_api.py has the access log's)."""

    permission_classes = [IsSupervisor]
    filterset_class = AuditFilter
    model = AuditRecord
    represent = staticmethod(audit_representation)

    def cursor_ordering(self, request):
        return ("id",)

    @extend_schema(operation_id="audit_list", responses={200: AuditPageOut, **PROBLEM_RESPONSES(400, 401, 403, 429)})
    @reporting()  # the search may be served by a replica (README "Read replicas")
    def get(self, request):
        unknown = sorted(set(request.query_params) - set(self.filterset_class.base_filters) - {"cursor", "page_size"})
        if unknown:
            raise ProblemException("validation-error", f"unknown query parameter(s): {', '.join(unknown)}")
        qs = DjangoFilterBackend().filter_queryset(request, self.model.objects.all(), self)
        paginator = Cursor()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response([self.represent(r) for r in page])


class AuditVerifyView(WorkstreamAPIView):
    permission_classes = [IsSupervisor]

    @extend_schema(
        operation_id="audit_verify",
        summary="Check the audit hash chains, each stream's head and the newest signed checkpoint",
        responses={200: ChainReportOut, **PROBLEM_RESPONSES(401, 403, 429)},
    )
    def get(self, request):
        return Response(audit_verify(stream=request.query_params.get("stream") or None).as_dict())
