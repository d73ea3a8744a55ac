"""Webhook subscriptions, their delivery log, and the notification consumer's record (read-only)."""

from __future__ import annotations

import django_filters as df
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from api.pagination import Cursor
from api.problems import ProblemException
from api.schema import IDEMPOTENCY_KEY, PROBLEM_RESPONSES, page_size_parameter
from api.views import WorkstreamAPIView
from events import services
from events.models import Delivery, ProcessedEvent
from events.services import EVENT_TYPE
from workitems.policy import is_supervisor

_IDEMPOTENCY = IDEMPOTENCY_KEY
_PAGING = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="opaque cursor from next/previous"),
    page_size_parameter(),
]


class CanManageSubscriptions(BasePermission):
    message = "webhook subscriptions are for service clients and admins"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and services.subscription_may_manage(request.user))


class IsSupervisor(BasePermission):
    message = "the notification record is for supervisors and admins"

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and is_supervisor(request.user))


def _reject_unknown(request, known: set[str]) -> None:
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ProblemException(
            "validation-error",
            f"unknown query parameter(s): {', '.join(unknown)}",
            errors=[{"field": u, "message": "unknown parameter"} for u in unknown],
        )


# --- subscriptions ---------------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "uri", "pattern": "^https?://", "maxLength": 1000})
class WebhookUrlIn(serializers.CharField):
    """An http or https URL (events/urlguard.py also refuses private and unresolvable targets)."""


@extend_schema_field({"type": "string", "pattern": EVENT_TYPE.pattern, "maxLength": 100})
class EventTypeIn(serializers.CharField):
    """An event type name, e.g. `workitem.completed.v1` (events/services.py EVENT_TYPE)."""


class SubscriptionIn(serializers.Serializer):
    url = WebhookUrlIn(max_length=1000)
    event_types = serializers.ListField(
        child=EventTypeIn(max_length=100), allow_empty=False, min_length=1, max_length=100
    )


class SubscriptionOut(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    event_types = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    disabled_reason = serializers.CharField()
    consecutive_failures = serializers.IntegerField()
    circuit_open_until = serializers.DateTimeField(allow_null=True)


class SubscriptionCreatedOut(SubscriptionOut):
    secret = serializers.CharField(help_text="The signing secret (whsec_…), shown only in this response.")


class SubscriptionPageOut(serializers.Serializer):
    results = SubscriptionOut(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


def subscription_representation(sub, *, with_secret: bool = False) -> dict:
    data = SubscriptionOut(sub).data
    if with_secret:
        data["secret"] = sub.secret
    return data


class SubscriptionListCreateView(WorkstreamAPIView):
    permission_classes = [CanManageSubscriptions]

    def cursor_ordering(self, request):
        return ("id",)

    @extend_schema(
        operation_id="subscriptions_list",
        summary="Webhook subscriptions (yours; all for admins)",
        parameters=_PAGING,
        responses={200: SubscriptionPageOut, **PROBLEM_RESPONSES(400, 401, 403, 429)},
    )
    def get(self, request):
        _reject_unknown(request, {"cursor", "page_size"})
        paginator = Cursor()
        page = paginator.paginate_queryset(services.subscriptions_visible_to(request.user), request, view=self)
        return paginator.get_paginated_response([subscription_representation(s) for s in page])

    @extend_schema(
        operation_id="subscriptions_create",
        summary="Subscribe a URL to event types",
        description="Deliveries are signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, "
        "`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`) with the `secret` returned "
        "here once. URLs resolving to private, loopback or link-local addresses are refused unless "
        "`webhooks.allowPrivateTargets` is on.",
        request=SubscriptionIn,
        parameters=[_IDEMPOTENCY],
        responses={201: SubscriptionCreatedOut, **PROBLEM_RESPONSES(400, 401, 403, 409, 413, 422, 429)},
    )
    def post(self, request):
        ser = SubscriptionIn(data=request.data)
        ser.is_valid(raise_exception=True)
        sub = services.subscription_create(actor=request.user, **ser.validated_data)
        location = reverse("subscription-detail", args=[sub.pk])
        return Response(subscription_representation(sub, with_secret=True), status=201, headers={"Location": location})


class SubscriptionDetailView(WorkstreamAPIView):
    permission_classes = [CanManageSubscriptions]

    @extend_schema(
        operation_id="subscriptions_delete",
        summary="Stop deliveries to a subscription (its delivery log is kept)",
        responses={204: OpenApiResponse(description="deleted"), **PROBLEM_RESPONSES(401, 403, 404, 429)},
    )
    def delete(self, request, subscription_id: int):
        services.subscription_delete(actor=request.user, subscription_id=subscription_id)
        return Response(status=204)


class DeliveryOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    event_id = serializers.UUIDField(source="event.event_id")
    event_type = serializers.CharField()
    url = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    next_attempt_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    attempt_log = serializers.ListField(child=serializers.DictField())


class DeliveryPageOut(serializers.Serializer):
    results = DeliveryOut(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class SubscriptionDeliveriesView(WorkstreamAPIView):
    permission_classes = [CanManageSubscriptions]

    def cursor_ordering(self, request):
        return ("-id",)

    @extend_schema(
        operation_id="subscriptions_deliveries",
        summary="A subscription's deliveries, newest first, each with its attempts",
        parameters=[
            *_PAGING,
            OpenApiParameter("status", OpenApiTypes.STR, enum=["pending", "delivered", "failed"]),
        ],
        responses={200: DeliveryPageOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 429)},
    )
    def get(self, request, subscription_id: int):
        _reject_unknown(request, {"cursor", "page_size", "status"})
        sub = services.subscription_get_for(actor=request.user, subscription_id=subscription_id)
        qs = Delivery.objects.filter(subscription=sub).select_related("event")
        status = request.query_params.get("status")
        if status:
            if status not in (Delivery.PENDING, Delivery.DELIVERED, Delivery.FAILED):
                raise ProblemException("validation-error", "status must be pending, delivered or failed")
            qs = qs.filter(status=status)
        paginator = Cursor()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(DeliveryOut(page, many=True).data)


# --- notifications ---------------------------------------------------------------------------


class NotificationFilter(df.FilterSet):
    event_type = df.CharFilter()
    correlation_id = df.CharFilter()
    aggregate_id = df.CharFilter()
    event_id = df.UUIDFilter()

    class Meta:
        model = ProcessedEvent
        fields: list[str] = []


class NotificationOut(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.UUIDField()
    event_type = serializers.CharField()
    aggregate_id = serializers.CharField()
    sequence = serializers.IntegerField(allow_null=True)
    correlation_id = serializers.CharField()
    occurred_at = serializers.DateTimeField(allow_null=True)
    processed_at = serializers.DateTimeField()
    envelope = serializers.DictField()


class NotificationPageOut(serializers.Serializer):
    results = NotificationOut(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class NotificationListView(WorkstreamAPIView):
    permission_classes = [IsSupervisor]
    filterset_class = NotificationFilter

    def cursor_ordering(self, request):
        return ("-id",)

    @extend_schema(
        operation_id="notifications_list",
        summary="Events recorded by the notification consumer (each once), newest first",
        parameters=_PAGING,
        responses={200: NotificationPageOut, **PROBLEM_RESPONSES(400, 401, 403, 429)},
    )
    def get(self, request):
        _reject_unknown(request, set(NotificationFilter.base_filters) | {"cursor", "page_size"})
        qs = DjangoFilterBackend().filter_queryset(request, ProcessedEvent.objects.all(), self)
        paginator = Cursor()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(NotificationOut(page, many=True).data)
