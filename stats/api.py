"""The statistics API: figures from the maintained counters (stats.selectors), for the queues
the caller sees (the same visibility as the rest of the API)."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.problems import ProblemException
from api.schema import PROBLEM_RESPONSES, TIME_PATTERN
from api.views import WorkstreamAPIView
from config.db_router import reporting
from stats import selectors
from workitems.schemas import parse_iso_time, parse_positive_duration


def _refuse(field: str, message: str):
    raise ProblemException("validation-error", f"{field}: {message}", errors=[{"field": field, "message": message}])


def _params(request, allowed: set[str]) -> dict[str, str]:
    params = request.query_params
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ProblemException(
            "validation-error",
            f"unknown query parameter(s): {', '.join(unknown)}",
            errors=[{"field": u, "message": "unknown parameter"} for u in unknown],
        )
    for name in params:
        if len(params.getlist(name)) > 1:
            _refuse(name, "give it once")
    return {k: params[k] for k in params}


def _hours(raw: str | None, field: str, default: timedelta, top: timedelta) -> timedelta:
    """An ISO 8601 duration of whole hours, 1 hour to `top` (400 naming `field` otherwise)."""
    if raw is None:
        return default
    value, _why = parse_positive_duration(raw)
    if value is None or value % selectors.HOUR or value > top:
        _refuse(field, f"must be an ISO 8601 duration of whole hours from PT1H to P{top.days}D (e.g. PT24H)")
    return value


def parse_window(raw: str | None) -> timedelta:
    return _hours(raw, "window", selectors.DEFAULT_WINDOW, selectors.MAX_WINDOW)


def _queue_ids(request, name: str | None) -> list[int]:
    if name is not None and not name:
        _refuse("queue", "must name a queue")
    return selectors.visible_queue_ids(actor=request.user, name=name)  # 404 for a queue not visible


# What `_hours` takes, as the document says it: PT1H–PT744H or P1D–P31D (P1DT2H is taken too).
HOURS_PATTERN = r"^(?:PT(?:[1-9]|[1-9][0-9]|[1-6][0-9]{2}|7[0-3][0-9]|74[0-4])H|P(?:[1-9]|[12][0-9]|3[01])D)$"
WINDOW = OpenApiParameter(
    "window",
    {"type": "string", "pattern": HOURS_PATTERN},
    description="ISO 8601 duration of whole hours ending now, PT1H–P31D; default PT24H",
)
QUEUE = OpenApiParameter(
    "queue", {"type": "string", "minLength": 1}, description="one queue's name (default: every queue you see)"
)


class UserLoadOut(serializers.Serializer):
    user = serializers.CharField()
    open = serializers.IntegerField()


class QueueFiguresOut(serializers.Serializer):
    queue = serializers.CharField()
    open = serializers.IntegerField(help_text="open items, every open state")
    offered = serializers.IntegerField()
    assigned = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    suspended = serializers.IntegerField()
    unassigned = serializers.IntegerField(help_text="open items nobody holds")
    at_risk = serializers.IntegerField(help_text="open items whose sla_state is at_risk")
    breached = serializers.IntegerField(help_text="open items whose sla_state is breached")
    oldest_age_seconds = serializers.IntegerField(allow_null=True)
    max_open = serializers.IntegerField(allow_null=True)
    utilization = serializers.FloatField(allow_null=True, help_text="open / max_open")
    window = serializers.CharField(help_text="e.g. PT24H")
    window_start = serializers.DateTimeField(help_text="the window: whole hours from here to now")
    created = serializers.IntegerField()
    completed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    failed = serializers.IntegerField()
    sla_compliance = serializers.FloatField(allow_null=True, help_text="completed with a deadline: share on time")
    avg_wait_seconds = serializers.FloatField(allow_null=True, help_text="put up (created or offered) → handed out")
    avg_handle_seconds = serializers.FloatField(allow_null=True, help_text="last assignment → completion")
    per_user_load = UserLoadOut(many=True)


class UserFiguresOut(serializers.Serializer):
    user = serializers.CharField()
    open = serializers.IntegerField(help_text="items held in these queues now")
    capacity = serializers.IntegerField(allow_null=True)
    completed_in_window = serializers.IntegerField()
    avg_handle_seconds = serializers.FloatField(allow_null=True)
    available = serializers.BooleanField()


class PointOut(serializers.Serializer):
    start = serializers.DateTimeField()
    count = serializers.IntegerField()


class StatsQueuesView(WorkstreamAPIView):
    @extend_schema(
        operation_id="stats_queues",
        summary="Figures of every queue you see",
        parameters=[WINDOW],
        responses={200: QueueFiguresOut(many=True), **PROBLEM_RESPONSES(400, 401, 429)},
    )
    @reporting()
    def get(self, request):
        window = parse_window(_params(request, {"window"}).get("window"))
        # the visible queues as a subquery of the figures' statement: one round trip, not two
        figures = selectors.queue_figures(selectors.visible_queues(actor=request.user), window)
        return Response(sorted(figures.values(), key=lambda f: f["queue"]))


class QueueStatsView(WorkstreamAPIView):
    @extend_schema(
        operation_id="queues_stats",
        summary="Figures of one queue",
        parameters=[WINDOW],
        responses={200: QueueFiguresOut, **PROBLEM_RESPONSES(400, 401, 404, 429)},
    )
    @reporting()
    def get(self, request, name: str):
        # Whoever may see the queue may see its figures (members watch their own load).
        window = parse_window(_params(request, {"window"}).get("window"))
        ids = _queue_ids(request, name)
        return Response(selectors.queue_figures(ids, window)[ids[0]])


class StatsUsersView(WorkstreamAPIView):
    @extend_schema(
        operation_id="stats_users",
        summary="Per-user load and throughput in the queues you see",
        parameters=[QUEUE, WINDOW],
        responses={200: UserFiguresOut(many=True), **PROBLEM_RESPONSES(400, 401, 404, 429)},
    )
    @reporting()
    def get(self, request):
        params = _params(request, {"queue", "window"})
        window = parse_window(params.get("window"))
        return Response(selectors.user_figures(_queue_ids(request, params.get("queue")), window))


class StatsTimeseriesView(WorkstreamAPIView):
    @extend_schema(
        operation_id="stats_timeseries",
        summary="Counts per interval",
        parameters=[
            OpenApiParameter("metric", str, enum=list(selectors.METRICS), required=True),
            QUEUE,
            OpenApiParameter(
                "interval",
                {"type": "string", "pattern": HOURS_PATTERN},
                description="ISO 8601 duration of whole hours, up to P31D; default PT1H",
            ),
            OpenApiParameter(
                "since",
                {"type": "string", "format": "date-time", "pattern": TIME_PATTERN},
                description="RFC 3339 time with a zone; buckets start at its hour (at most 1000 buckets back "
                "from now; a time in the future gives none); default 24 hours ago",
            ),
        ],
        responses={200: PointOut(many=True), **PROBLEM_RESPONSES(400, 401, 404, 429)},
    )
    @reporting()
    def get(self, request):
        params = _params(request, {"metric", "queue", "interval", "since"})
        metric = params.get("metric")
        if metric not in selectors.METRICS:
            _refuse("metric", f"must be one of {', '.join(selectors.METRICS)}")
        interval = _hours(params.get("interval"), "interval", selectors.DEFAULT_INTERVAL, selectors.MAX_WINDOW)
        since = None
        if "since" in params:
            since, why = parse_iso_time(params["since"])
            if since is None:
                _refuse("since", why)
        ids = _queue_ids(request, params.get("queue"))
        return Response(selectors.timeseries(metric, ids, interval, since))
