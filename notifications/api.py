"""/me/notifications (the in-app channel) and /me/preferences."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from api.problems import ProblemException
from api.schema import PROBLEM_RESPONSES, bounded_int_parameter
from api.views import WorkstreamAPIView
from config import wsconfig
from config.timefmt import isoformat_z
from notifications import models as m
from workitems.errors import NotFound, ValidationFailed

DEFAULT_LIMIT = 50


def notification_json(n: m.Notification) -> dict:
    return {
        "id": n.pk,
        "kind": n.kind,
        "title": n.title,
        "body": n.body,
        "work_item": n.work_item_id,
        "queue": n.queue or None,
        "event_id": str(n.event_id),
        "created_at": isoformat_z(n.created_at),
        "read_at": isoformat_z(n.read_at),
    }


def _int_param(request, name: str, default: int | None, maximum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise ProblemException("validation-error", f"{name}: must be an integer from 1 to {maximum}")
    return int(raw)


def _unread(user) -> int:
    return m.Notification.objects.filter(recipient=user, read_at__isnull=True).count()


class MyNotificationsView(WorkstreamAPIView):
    @extend_schema(
        operation_id="me_notifications",
        parameters=[
            OpenApiParameter("unread", bool, description="only the unread ones"),
            bounded_int_parameter("limit", wsconfig.get().performance.maxPageSize, "at most this many (default 50)"),
            bounded_int_parameter("before", 2**62, "only notifications with a smaller id (the next page)"),
        ],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="{unread, results, next_before}"),
            **PROBLEM_RESPONSES(400, 401, 429),
        },
    )
    def get(self, request):
        unread = request.query_params.get("unread", "false").lower()
        if unread not in ("true", "false"):
            raise ProblemException("validation-error", "unread: must be true or false")
        limit = _int_param(request, "limit", DEFAULT_LIMIT, wsconfig.get().performance.maxPageSize)
        before = _int_param(request, "before", None, 2**62)
        qs = m.Notification.objects.filter(recipient=request.user).order_by("-id")
        if unread == "true":
            qs = qs.filter(read_at__isnull=True)
        if before is not None:
            qs = qs.filter(id__lt=before)
        rows = list(qs[: limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        return Response(
            {
                "unread": _unread(request.user),
                "results": [notification_json(n) for n in rows],
                "next_before": rows[-1].pk if more else None,
            }
        )


class MyNotificationReadView(WorkstreamAPIView):
    @extend_schema(
        operation_id="me_notification_read",
        request=None,
        responses={200: OpenApiTypes.OBJECT, **PROBLEM_RESPONSES(401, 404, 429)},
    )
    def post(self, request, notification_id: int):
        with transaction.atomic():
            n = m.Notification.objects.select_for_update().filter(pk=notification_id, recipient=request.user).first()
            if n is None:
                raise NotFound(f"no notification {notification_id} of yours")
            if n.read_at is None:
                n.read_at = timezone.now()
                n.save(update_fields=["read_at"])
        return Response({**notification_json(n), "unread": _unread(request.user)})


class MyNotificationsReadAllView(WorkstreamAPIView):
    @extend_schema(
        operation_id="me_notifications_read_all",
        request=None,
        responses={200: OpenApiTypes.OBJECT, **PROBLEM_RESPONSES(401, 429)},
    )
    def post(self, request):
        marked = m.Notification.objects.filter(recipient=request.user, read_at__isnull=True).update(
            read_at=timezone.now()
        )
        return Response({"marked": marked, "unread": _unread(request.user)})


def preferences_json(user) -> dict:
    pref = m.NotificationPreference.objects.filter(user=user).first()
    chosen = pref.email if pref else {}
    return {"email": {t: chosen.get(t, True) is not False for t in m.TRIGGERS}}


def _preferences_body() -> dict:
    """The document's form of a preferences body: email on/off per known trigger."""
    triggers = {t: {"type": "boolean"} for t in m.TRIGGERS}
    email = {"type": "object", "properties": triggers, "additionalProperties": False}
    return {"type": "object", "properties": {"email": email}, "additionalProperties": False}


class MyPreferencesView(WorkstreamAPIView):
    @extend_schema(operation_id="me_preferences", responses={200: OpenApiTypes.OBJECT, **PROBLEM_RESPONSES(401, 429)})
    def get(self, request):
        return Response(preferences_json(request.user))

    @extend_schema(
        operation_id="me_preferences_update",
        request={"application/json": _preferences_body()},
        responses={200: OpenApiTypes.OBJECT, **PROBLEM_RESPONSES(400, 401, 429)},
    )
    def patch(self, request):
        data = request.data
        if not isinstance(data, dict):
            raise ValidationFailed([{"field": "", "message": "the body must be a JSON object"}])
        errors = [{"field": k, "message": "unknown key (allowed: email)"} for k in data if k != "email"]
        email = data.get("email", {})
        if not isinstance(email, dict):
            errors.append({"field": "email", "message": "must be an object {trigger: true|false}"})
            email = {}
        for trigger, on in email.items():
            if trigger not in m.TRIGGERS:
                known = ", ".join(m.TRIGGERS)
                errors.append({"field": f"email.{trigger}", "message": f"unknown trigger (one of {known})"})
            elif not isinstance(on, bool):
                errors.append({"field": f"email.{trigger}", "message": "must be true or false"})
        if errors:
            raise ValidationFailed(errors)
        with transaction.atomic():
            pref, _ = m.NotificationPreference.objects.select_for_update().get_or_create(user=request.user)
            pref.email = {**pref.email, **email}
            pref.save(update_fields=["email"])
        return Response(preferences_json(request.user))
