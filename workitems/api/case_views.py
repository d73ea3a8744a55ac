"""Case endpoints: reads with the item visibility rule (workitems.cases), writes through the
case commands (workitems.services.cases). A case is named by its `case_number` in paths."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.pagination import Cursor
from api.schema import IDEMPOTENCY_KEY, PROBLEM_RESPONSES, page_size_parameter
from api.views import WorkstreamAPIView, etag, parse_if_match
from workitems import cases, services
from workitems.api import serializers as s
from workitems.api.views import _body, rows, with_relations
from workitems.models import CaseState


class CaseIn(serializers.Serializer):
    """Create body (the service layer validates it fully; this documents it)."""

    case_number = serializers.RegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$", help_text="unique; letters, digits, '.', '_', ':', '-'"
    )
    title = serializers.CharField(max_length=500, required=False)
    data = serializers.DictField(required=False, help_text="any JSON object")
    sensitive_keys = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="data keys masked for callers not entitled"
    )
    due_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="the deadline of its items that give none (before the queue's SLA)"
    )


class CaseOut(CaseIn):
    id = serializers.IntegerField()
    due_at = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(choices=CaseState.choices)
    version = serializers.IntegerField(help_text="the value of ETag")
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    closed_at = serializers.DateTimeField(allow_null=True)


class CaseDetailOut(CaseOut):
    items = s.WorkItemOut(many=True, help_text="the case's items the caller sees, oldest first")
    history = s.AuditRecordOut(
        many=True, help_text="the audit records of those items and of the case itself, in the order written"
    )


class CasePageOut(serializers.Serializer):
    results = CaseOut(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class CaseActionIn(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, help_text="for the audit trail")


def case_representation(case, actor) -> dict:
    return cases.case_snapshot(case, unmasked=cases.sees_case_sensitive(actor, case))


def case_response(case, actor, *, body: dict | None = None, status_code: int = 200, headers=None) -> Response:
    resp = Response(body or case_representation(case, actor), status=status_code, headers=headers)
    resp["ETag"] = etag(case.version)
    return resp


class CaseListCreateView(WorkstreamAPIView):
    @extend_schema(
        operation_id="cases_list",
        summary="The cases the caller sees, newest first",
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="opaque cursor from next/previous"),
            page_size_parameter(),
        ],
        responses={200: CasePageOut, **PROBLEM_RESPONSES(400, 401, 429)},
    )
    def get(self, request):
        paginator = Cursor()
        page = paginator.paginate_queryset(cases.case_list_for(actor=request.user), request, view=self)
        return paginator.get_paginated_response([case_representation(c, request.user) for c in page])

    @extend_schema(
        operation_id="cases_create",
        summary="Open a case",
        request=CaseIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: CaseOut, **PROBLEM_RESPONSES(400, 401, 403, 409, 413, 422, 429)},
    )
    def post(self, request):
        case = services.case_create(actor=request.user, data=_body(request))
        location = reverse("case-detail", args=[case.case_number])
        return case_response(case, request.user, status_code=201, headers={"Location": location})


class CaseDetailView(WorkstreamAPIView):
    @extend_schema(
        operation_id="cases_retrieve",
        summary="One case, its items and its routing history",
        description="`{case_number}` is the case's number. A caller who sees every item sees every case; "
        "anyone else a case holding an item they see, with only those items and their audit records.",
        responses={200: CaseDetailOut, **PROBLEM_RESPONSES(401, 404, 429)},
    )
    def get(self, request, case_number: str):
        actor = request.user
        case = cases.case_get_for(actor=actor, case_number=case_number)
        items = with_relations(cases.case_items_for(actor=actor, case=case))
        body = case_representation(case, actor)
        body["items"] = [s.item_representation(i, actor) for i in rows(items)]
        body["history"] = [s.audit_representation(r) for r in cases.case_history_for(actor=actor, case=case)]
        return case_response(case, actor, body=body)


def case_action_view(action: str):
    command = {"close": services.case_close, "reopen": services.case_reopen}[action]
    summaries = {
        "close": "Close a case (refused with 409 while any of its items is open)",
        "reopen": "Reopen a closed case",
    }

    class CaseActionView(WorkstreamAPIView):
        @extend_schema(
            operation_id=f"cases_{action}",
            summary=summaries[action],
            description='Admins, supervisors and service clients. Send `If-Match: "<version>"` to guard against '
            "concurrent changes (412 when stale).",
            request=CaseActionIn,
            parameters=[OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER), IDEMPOTENCY_KEY],
            responses={200: CaseOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 409, 412, 413, 422, 429)},
        )
        def post(self, request, case_number: str):
            ser = CaseActionIn(data=_body(request, allowed=CaseActionIn().fields))
            ser.is_valid(raise_exception=True)
            expected = parse_if_match(request)
            case = command(
                actor=request.user,
                case_number=case_number,
                expected_version=expected,
                reason=ser.validated_data.get("reason", ""),
            )
            return case_response(case, request.user)

    CaseActionView.__name__ = CaseActionView.__qualname__ = f"Case{action.capitalize()}View"
    return CaseActionView
