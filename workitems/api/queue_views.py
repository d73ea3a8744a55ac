"""Queue endpoints: reads for everyone who may see the queue, writes for admins."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.problems import ProblemException
from api.schema import PROBLEM_RESPONSES
from api.views import WorkstreamAPIView
from directory.roles import ROLES
from distribution.strategies import queue_strategy_choices
from workitems import queues, services
from workitems.api.fields import DurationIn, ShareIn, TimeZoneIn
from workitems.models import MAX_QUEUE_WEIGHT, Calendar

QUEUE_STRATEGY_CHOICES = queue_strategy_choices()


class QueueIn(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True)
    strategy = serializers.ChoiceField(choices=QUEUE_STRATEGY_CHOICES, required=False)
    candidate_groups = serializers.ListField(child=serializers.CharField(), required=False)
    capacity_per_user = serializers.IntegerField(allow_null=True, required=False, min_value=1, max_value=100_000)
    sla = DurationIn(allow_null=True, required=False, help_text="ISO 8601 duration, e.g. PT4H")
    escalation_queue = serializers.CharField(allow_null=True, required=False)
    lifecycle = serializers.CharField(allow_null=True, required=False)
    sensitive_keys = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="context_data keys masked for callers not entitled"
    )
    sensitive_roles = serializers.ListField(
        child=serializers.ChoiceField(choices=ROLES),
        required=False,
        allow_null=True,
        help_text="platform roles that read the sensitive keys unmasked (default, and null: admin, supervisor); "
        "the item's creating client always does",
    )
    encrypted_keys = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="context_data keys stored encrypted (needs the WORKSTREAM_CONTEXT_KEYS key ring); read in clear "
        "only by those who read the sensitive keys, the rest and every event get ***encrypted***",
    )
    reservation_timeout = DurationIn(
        allow_null=True, required=False, help_text="push with acceptance: ISO 8601 duration to accept, e.g. PT5M"
    )
    calendar = serializers.CharField(allow_null=True, required=False, help_text="a business calendar's name")
    at_risk_ratio = ShareIn(required=False, help_text="share of the allowed time, above 0 and below 1; default 0.75")
    escalation_policy = serializers.ListField(
        child=serializers.DictField(), allow_null=True, required=False, help_text="levels [{at, actions}]"
    )
    max_open = serializers.IntegerField(
        allow_null=True,
        required=False,
        min_value=1,
        max_value=10_000_000,
        help_text="open items the queue should hold; null = no limit",
    )
    overflow_queue = serializers.CharField(
        allow_null=True, required=False, help_text="where the capacity check moves the excess above max_open"
    )
    supervisor_groups = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="groups whose members get the queue's alerts and daily summary; empty = every supervisor",
    )
    channels = serializers.ListField(
        child=serializers.DictField(),
        allow_null=True,
        required=False,
        help_text='where its alerts go: [{"type": in_app|email|slack|teams|pagerduty, "ref": secret name}]; '
        "null = every channel switched on",
    )
    critical = serializers.BooleanField(required=False, help_text="breaches and capacity alerts also page")
    weight = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_QUEUE_WEIGHT,
        help_text="claim-next over several queues: its items' score is multiplied by this (default 1)",
    )
    department = serializers.CharField(
        allow_null=True,
        required=False,
        help_text="department code: new items are for members of it and its sub-departments only",
    )
    active = serializers.BooleanField(required=False)


class QueueOut(QueueIn):
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class QueuePatchIn(QueueIn):
    name = None  # a queue's name cannot change (the path names it)


def _object_body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ProblemException("validation-error", "the request body must be a JSON object")
    return dict(request.data)


class QueueListCreateView(WorkstreamAPIView):
    @extend_schema(operation_id="queues_list", responses={200: QueueOut(many=True), **PROBLEM_RESPONSES(401, 429)})
    def get(self, request):
        return Response([queues.queue_snapshot(q) for q in queues.queue_list_for(actor=request.user)])

    @extend_schema(
        operation_id="queues_create",
        request=QueueIn,
        responses={201: QueueOut, **PROBLEM_RESPONSES(400, 401, 403, 409, 413, 422, 429)},
    )
    def post(self, request):
        queue = services.queue_create(actor=request.user, data=_object_body(request))
        return Response(
            queues.queue_snapshot(queue), status=201, headers={"Location": reverse("queue-detail", args=[queue.name])}
        )


class QueueDetailView(WorkstreamAPIView):
    @extend_schema(operation_id="queues_retrieve", responses={200: QueueOut, **PROBLEM_RESPONSES(401, 404, 429)})
    def get(self, request, name: str):
        return Response(queues.queue_snapshot(queues.queue_get_for(actor=request.user, name=name)))

    @extend_schema(
        operation_id="queues_partial_update",
        request=QueuePatchIn,
        responses={200: QueueOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 413, 429)},
    )
    def patch(self, request, name: str):
        queues.queue_get_for(actor=request.user, name=name)  # 404 before 403 for what one may not see
        queue = services.queue_update(actor=request.user, name=name, data=_object_body(request))
        return Response(queues.queue_snapshot(queue))


class RebalanceOut(serializers.Serializer):
    queue = serializers.CharField()
    open = serializers.IntegerField(help_text="open items after the check")
    max_open = serializers.IntegerField(allow_null=True)
    alerted = serializers.BooleanField(help_text="this check crossed 90% of max_open and sent the alert")
    moved = serializers.ListField(child=serializers.IntegerField(), help_text="ids moved to the overflow queue")


class QueueRebalanceView(WorkstreamAPIView):
    @extend_schema(
        operation_id="queues_rebalance",
        summary="Run the capacity check of one queue now",
        description="Supervisors and admins. Alerts once per crossing of 90% of max_open "
        "(queue.capacity_alert.v1) and moves the unclaimed items above max_open, lowest priority first "
        "(then newest), to the overflow queue.",
        request=None,
        responses={200: RebalanceOut, **PROBLEM_RESPONSES(401, 403, 404, 429)},
    )
    def post(self, request, name: str):
        queue = queues.queue_get_for(actor=request.user, name=name)  # 404 before 403
        _object_body(request)  # no body needed; one that is not an object is refused
        return Response(services.queue_rebalance(queue=queue, actor=request.user))


class CalendarIn(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    time_zone = TimeZoneIn(help_text="an IANA time zone, e.g. Europe/Berlin")
    working_hours = serializers.DictField(
        child=serializers.ListField(child=serializers.ListField(child=serializers.CharField())),
        help_text='local working spans per weekday: {"mon": [["09:00", "17:00"]], …}',
    )
    holidays = serializers.ListField(child=serializers.DateField(), required=False)
    country = serializers.CharField(required=False, allow_blank=True, help_text="public holidays of this country")
    subdivision = serializers.CharField(required=False, allow_blank=True)


class CalendarPatchIn(CalendarIn):
    name = serializers.SlugField(max_length=100, required=False)
    time_zone = TimeZoneIn(required=False)
    working_hours = serializers.DictField(required=False)


def _calendar_or_404(name: str) -> Calendar:
    calendar = Calendar.objects.filter(name=name).first()
    if calendar is None:
        raise ProblemException("not-found", f"calendar {name!r} not found")
    return calendar


class CalendarListCreateView(WorkstreamAPIView):
    @extend_schema(operation_id="calendars_list", responses={200: CalendarIn(many=True), **PROBLEM_RESPONSES(401, 429)})
    def get(self, request):
        return Response([queues.calendar_snapshot(c) for c in Calendar.objects.order_by("name")])

    @extend_schema(
        operation_id="calendars_create",
        request=CalendarIn,
        responses={201: CalendarIn, **PROBLEM_RESPONSES(400, 401, 403, 409, 413, 422, 429)},
    )
    def post(self, request):
        calendar = services.calendar_create(actor=request.user, data=_object_body(request))
        return Response(
            queues.calendar_snapshot(calendar),
            status=201,
            headers={"Location": reverse("calendar-detail", args=[calendar.name])},
        )


class CalendarDetailView(WorkstreamAPIView):
    @extend_schema(operation_id="calendars_retrieve", responses={200: CalendarIn, **PROBLEM_RESPONSES(401, 404, 429)})
    def get(self, request, name: str):
        return Response(queues.calendar_snapshot(_calendar_or_404(name)))

    @extend_schema(
        operation_id="calendars_partial_update",
        request=CalendarPatchIn,
        responses={200: CalendarIn, **PROBLEM_RESPONSES(400, 401, 403, 404, 413, 429)},
    )
    def patch(self, request, name: str):
        calendar = services.calendar_update(actor=request.user, name=name, data=_object_body(request))
        return Response(queues.calendar_snapshot(calendar))
