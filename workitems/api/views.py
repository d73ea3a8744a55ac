"""Work-item endpoints: thin views over the selectors (reads) and services (writes)."""

from __future__ import annotations

from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.response import Response

from api.pagination import Cursor
from api.problems import CONTENT_TYPE, ProblemException, domain_problem_body
from api.schema import IDEMPOTENCY_KEY, PROBLEM_RESPONSES, page_size_parameter
from api.views import WorkstreamAPIView, etag, parse_if_match
from archive.selectors import archived_history, archived_item_get_for
from audit.models import AuditRecord
from config import sqlcache
from workitems import policy, schemas, services
from workitems.api import serializers as s
from workitems.errors import NotFound, ValidationFailed
from workitems.filters import ORDERINGS, WorkItemFilter
from workitems.models import ACTIONS, ROUTED_ACTIONS, WorkItem
from workitems.schemas import UPDATABLE
from workitems.selectors import (
    keep_lists,
    stand_in_user,
    user_values,
    with_lists,
    work_item_get_for,
    work_item_list_for,
)

FAR_FUTURE = parse_datetime("9999-12-31T00:00:00+00:00")
KNOWN_LIST_PARAMS = set(WorkItemFilter.base_filters) | {"cursor", "page_size"}
_UNFILTERED = {"cursor", "page_size", "ordering"}  # a list with no other parameter

# The routes and their bodies derive from the action table (workitems.models.ACTIONS).
ARG_BODIES = {
    "result": s.ResultIn,
    "reason": s.ReasonIn,
    "user": s.UserIn,
    "sub_status": s.SubStatusIn,
    "queue": s.QueueArgIn,  # move {queue}
    "users": s.ForwardIn,  # forward {users, groups}
}
API_ACTIONS = tuple(ROUTED_ACTIONS)
ACTION_BODIES = {
    route: ARG_BODIES[ACTIONS[name].args[0]] for route, name in ROUTED_ACTIONS.items() if ACTIONS[name].args
}


def with_relations(qs):
    """The items with what their representation shows (lists as names, queue, users); iterate
    them through `rows`."""
    return with_lists(qs).select_related("queue__lifecycle", "assignee", "reserved_for", "department")


def _listed(qs):
    """A list's items as the list shows and orders them (`due_sort`: no deadline sorts last)."""
    return with_relations(qs.annotate(due_sort=Coalesce(F("due_at"), Value(FAR_FUTURE))))


def _listed_field(name: str):
    """The field a list is ordered by (`due_sort` is the annotation's)."""
    return DateTimeField() if name == "due_sort" else WorkItem._meta.get_field(name)


def rows(items):
    """The items of a `with_relations` queryset (or of a page of one), their lists in place."""
    items = list(items)
    for item in items:
        keep_lists(item)
    return items


def item_response(item, actor, *, status_code=200, headers=None, archived=False) -> Response:
    body = s.item_representation(item, actor)
    if archived:
        body.update(archived=True, allowed_actions=[])
    resp = Response(body, status=status_code, headers=headers)
    resp["ETag"] = etag(item.version)
    return resp


class WorkItemListCreateView(WorkstreamAPIView):
    filter_backends = [DjangoFilterBackend]
    filterset_class = WorkItemFilter

    def cursor_ordering(self, request):
        order = request.query_params.get("ordering") or "-created_at"
        field = order.lstrip("-")
        desc = order.startswith("-")
        if field == "due_at":
            field = "due_sort"  # nulls sort as "no deadline": last ascending, first descending
        return (("-" if desc else "") + field, "-id" if desc else "id")

    @extend_schema(
        operation_id="workitems_list",
        summary="Query work items",
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR, description="opaque cursor from next/previous"),
            page_size_parameter(),
        ],
        responses={200: s.WorkItemPageOut, **PROBLEM_RESPONSES(400, 401, 429)},
    )
    def get(self, request):
        unknown = sorted(set(request.query_params) - KNOWN_LIST_PARAMS)
        if unknown:
            raise ProblemException(
                "validation-error",
                f"unknown query parameter(s): {', '.join(unknown)}",
                errors=[{"field": u, "message": "unknown filter"} for u in unknown],
            )
        paginator = Cursor()
        page = self._unfiltered_page(request, paginator)
        if page is None:
            qs = self.filter_backends[0]().filter_queryset(request, work_item_list_for(actor=request.user), self)
            page = paginator.paginate_queryset(_listed(qs), request, view=self)
        return paginator.get_paginated_response([s.item_representation(i, request.user) for i in rows(page)])

    def _unfiltered_page(self, request, paginator: Cursor) -> list | None:
        """The page of a list without filters (a worker's inbox, paged and ordered), its statement
        compiled once per shape and connection (config.sqlcache: planning the ORM's statement
        took PostgreSQL 2-5 ms a call, building it as long again); None for any other list
        (the filters' ORM path) or off PostgreSQL."""
        params = request.query_params
        if set(params) - _UNFILTERED or params.get("ordering", ORDERINGS[0]) not in ORDERINGS:
            return None  # filters, or an ordering django-filter refuses
        actor = request.user
        w = paginator.window(request, self, _listed_field)
        sees_all = policy.sees_everything(actor)
        n = 0 if sees_all else len(policy.group_ids_of(actor))

        def build(stand):
            user = actor if sees_all else stand_in_user(stand, n)  # sees all: no value of the actor's
            after = None
            if w.after is not None:
                field = _listed_field(w.field)
                # a time, or the priority (a small integer)
                value = stand.time("after") if isinstance(field, DateTimeField) else stand.small("after")
                after = (value, stand.value("after_id"))
            return paginator.apply(_listed(work_item_list_for(actor=user)), w, after)

        key = ("workitems-list", sees_all, n, w.field, w.scan_desc, w.after is not None, w.size)
        template = sqlcache.template(key, build) if actor.is_authenticated else None
        if template is None:
            return None
        values = {} if sees_all else user_values(actor)
        if w.after is not None:
            values.update(after=w.after[0], after_id=w.after[1])
        return paginator.page(template.fetch(values), w)

    @extend_schema(
        operation_id="workitems_create",
        summary="Create a work item and distribute it",
        request=s.WorkItemCreateIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.WorkItemOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 409, 413, 422, 429)},
        examples=[
            OpenApiExample(
                "A claim review",
                request_only=True,
                value={
                    "workflow_id": "claims-2026",
                    "run_id": "run-8812",
                    "task_name": "review-claim",
                    "title": "Review claim 8812",
                    "queue": "claims",
                    "priority": 70,
                    "context_data": {"claim_id": 8812, "amount": 1200},
                },
            )
        ],
    )
    def post(self, request):
        item = services.work_item_create(actor=request.user, data=_body(request))
        location = reverse("workitem-detail", args=[item.pk])
        return item_response(item, request.user, status_code=201, headers={"Location": location})


class WorkItemBulkCreateView(WorkstreamAPIView):
    @extend_schema(
        operation_id="workitems_bulk_create",
        summary="Create up to 1,000 work items in one transaction",
        request=s.BulkCreateIn,
        parameters=[IDEMPOTENCY_KEY],
        responses={201: s.BulkCreateOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 409, 413, 422, 429)},
    )
    def post(self, request):
        body = _body(request, allowed={"items"})  # as a single create refuses unknown members, so does bulk
        items = services.work_item_create_many(actor=request.user, items=body.get("items"))
        qs = with_relations(type(items[0]).objects.filter(pk__in=[i.pk for i in items]).order_by("id"))
        return Response({"items": [s.item_representation(i, request.user) for i in rows(qs)]}, status=201)


class WorkItemDetailView(WorkstreamAPIView):
    @extend_schema(
        operation_id="workitems_retrieve",
        summary="One work item",
        description="An item archived by `manage.py archive_items` is still found, for whoever could see it: "
        "the same members plus `archived: true`, with no allowed actions (docs/api.md, Archived items).",
        responses={200: s.WorkItemOut, **PROBLEM_RESPONSES(401, 404, 429)},
    )
    def get(self, request, item_id: int):
        try:
            item = work_item_get_for(actor=request.user, item_id=item_id)
        except NotFound:
            # An archived item (archive_items): read-only, under the same visibility rule.
            archived = archived_item_get_for(actor=request.user, item_id=item_id)
            return item_response(archived, request.user, archived=True)
        return item_response(item, request.user)

    @extend_schema(
        operation_id="workitems_update",
        summary="Change an open item's priority, due date or follow-up date (supervisors)",
        description="Only the members sent change; a date as null clears it; values the item already "
        "has change nothing (200, same version). A new due date re-reads the SLA state. Send "
        '`If-Match: "<version>"` to guard against concurrent changes (412 when stale).',
        request=s.WorkItemUpdateIn,
        parameters=[OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={200: s.WorkItemOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 409, 412, 413, 429)},
    )
    def patch(self, request, item_id: int):
        body = _body(request, allowed=(*UPDATABLE, "reason"))
        reason = body.pop("reason", "")
        schemas.update_changes(body)  # a bad body is a 400 whatever If-Match says, as for actions
        expected = parse_if_match(request)
        item = services.work_item_update(
            item_id=item_id, actor=request.user, changes=body, expected_version=expected, reason=reason
        )
        return item_response(item, request.user)


class WorkItemActionView(WorkstreamAPIView):
    @extend_schema(
        operation_id="workitems_action",
        summary="Fire a lifecycle action",
        description="Bodies: complete {result}, fail/cancel/escalate/suspend/reject {reason}, "
        "delegate/assign {user, override (supervisors: outside the item's pool)}, "
        'sub-status {sub_status}; the others take none. Send `If-Match: "<version>"` to guard against '
        "concurrent changes (412 when stale).",
        parameters=[
            OpenApiParameter("action", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(API_ACTIONS)),
            OpenApiParameter("If-Match", OpenApiTypes.STR, OpenApiParameter.HEADER),
            IDEMPOTENCY_KEY,
        ],
        # Each action's own body; the document lists every action as its own operation with its
        # body (workitems/api/openapi.py splits this one by `action`).
        request=PolymorphicProxySerializer(
            component_name="ActionBody", serializers=list(ARG_BODIES.values()), resource_type_field_name=None
        ),
        responses={200: s.WorkItemOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 409, 412, 413, 422, 429)},
    )
    def post(self, request, item_id: int, action: str):
        if action not in API_ACTIONS:
            raise ProblemException("not-found", f"unknown action {action!r}; actions: {', '.join(API_ACTIONS)}")
        # The body is read and validated before the precondition: a bad body is a 400 whatever
        # If-Match says (the document and the server agree on the order of the answers).
        args = {}
        if action in ACTION_BODIES:
            body_class = ACTION_BODIES[action]
            ser = body_class(data=_body(request, allowed=body_class().fields))
            ser.is_valid(raise_exception=True)
            args = dict(ser.validated_data)
        else:
            _body(request, allowed=())  # still reject malformed JSON, and members the action does not take
        expected = parse_if_match(request)
        command = services.COMMANDS[ROUTED_ACTIONS[action]]
        item = command(item_id=item_id, actor=request.user, expected_version=expected, **args)
        return item_response(item, request.user)


# The bulk actions (services.bulk): one route and body each, so the document says what each takes.
BULK_BODIES = {
    "claim": (s.BulkClaimIn, None),
    "reassign": (s.BulkReassignIn, s.UserIn),
    "cancel": (s.BulkCancelIn, s.ReasonIn),
    "move": (s.BulkMoveIn, s.QueueArgIn),
}


def bulk_action_view(action: str):
    doc_body, args_body = BULK_BODIES[action]

    class BulkActionView(WorkstreamAPIView):
        @extend_schema(
            operation_id=f"workitems_bulk_{action}",
            summary=f"{action.capitalize()} many items: per item, or all or nothing",
            description="Each item goes through the action's own command. Default: each item its own "
            "transaction, 200 with each one's outcome in the order asked (the item after, or the problem "
            "that refused it). `atomic: true`: one transaction; the first refusal is the answer (its "
            "status, `index` and `id` name the item) and nothing changed.",
            request=doc_body,
            parameters=[IDEMPOTENCY_KEY],
            responses={200: s.BulkActionOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 409, 412, 413, 422, 429)},
        )
        def post(self, request):
            body = _body(request, allowed=doc_body().fields)
            items, atomic = body.pop("items", None), body.pop("atomic", False)
            if not isinstance(atomic, bool):
                raise ValidationFailed([{"field": "atomic", "message": "must be true or false"}])
            args = {}
            if args_body is not None:
                ser = args_body(data=body)
                ser.is_valid(raise_exception=True)
                args = dict(ser.validated_data)
            try:
                outcomes = services.work_items_bulk(
                    action=action, actor=request.user, items=items, args=args, atomic=atomic
                )
            except services.BulkRefused as refused:
                problem = domain_problem_body(refused.outcome.error, instance=request.path)
                problem.update(detail=refused.detail, index=refused.outcome.index, id=refused.outcome.item_id)
                return Response(problem, status=problem["status"], content_type=CONTENT_TYPE)
            results = [
                {"id": o.item_id, "status": 200, "item": s.item_representation(o.item, request.user)}
                if o.error is None
                else {"id": o.item_id, **_refusal(o.error, request.path)}
                for o in outcomes
            ]
            failed = sum(1 for o in outcomes if o.error is not None)
            return Response({"results": results, "succeeded": len(outcomes) - failed, "failed": failed})

    BulkActionView.__name__ = BulkActionView.__qualname__ = f"Bulk{action.capitalize()}View"
    return BulkActionView


def _refusal(error, instance: str) -> dict:
    problem = domain_problem_body(error, instance=instance)
    return {"status": problem["status"], "problem": problem}


class ClaimNextView(WorkstreamAPIView):
    @extend_schema(
        operation_id="workitems_claim_next",
        summary="Claim the best item the caller may take",
        request=s.ClaimNextIn,
        responses={
            200: s.WorkItemOut,
            204: OpenApiResponse(description="nothing to claim"),
            **PROBLEM_RESPONSES(400, 401, 403, 404, 409, 422, 429),
        },
    )
    def post(self, request):
        ser = s.ClaimNextIn(data=_body(request, allowed=s.ClaimNextIn().fields))
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        item = services.work_item_claim_next(actor=request.user, queue=data.get("queue"), queues=data.get("queues"))
        if item is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return item_response(item, request.user)


class WorkItemHistoryView(WorkstreamAPIView):
    @extend_schema(
        operation_id="workitems_history",
        summary="The item's audit records, oldest first",
        responses={200: s.AuditRecordOut(many=True), **PROBLEM_RESPONSES(401, 404, 429)},
    )
    def get(self, request, item_id: int):
        try:
            item = work_item_get_for(actor=request.user, item_id=item_id)
            records = AuditRecord.objects.filter(work_item_id=item.pk).order_by("seq")
        except NotFound:
            item = archived_item_get_for(actor=request.user, item_id=item_id)
            records = archived_history(item.pk)
        return Response([s.audit_representation(r) for r in records])


def _body(request, allowed=None) -> dict:
    """The request's JSON object; with `allowed`, a member not in it is refused with a 400 that
    names it (a misspelt argument must not pass as an absent one: `complete` with `reslt`)."""
    data = request.data
    if data is None:  # a JSON `null` is a body, and not an object
        return _not_object()
    if data == {} or data == []:
        return {} if not isinstance(data, list) else _not_object()
    if not isinstance(data, dict):
        return _not_object()
    unknown = sorted(set(data) - set(allowed)) if allowed is not None else []
    if unknown:
        raise ProblemException(
            "validation-error",
            f"{unknown[0]}: unknown field",
            errors=[{"field": name, "message": "unknown field"} for name in unknown],
        )
    return dict(data)


def _not_object():
    raise ProblemException(
        "validation-error",
        "the request body must be a JSON object",
        errors=[{"field": "body", "message": "not an object"}],
    )
