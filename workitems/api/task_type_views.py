"""Task-type endpoints: the defaults of a workflow's tasks, and a workflow's registration in one
call. Reads and writes for admins, supervisors and service clients (policy.may_define_task_types)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.schema import PROBLEM_RESPONSES
from api.views import WorkstreamAPIView
from workitems import services
from workitems.api.fields import DurationIn, TaskFormIn
from workitems.api.queue_views import _object_body
from workitems.tasktypes import task_type_get_for, task_type_list_for, task_type_snapshot

KEY = r"^[^/]+$"  # a path segment of /task-types/{workflow_id}/{task_name}


class TaskDefaultsIn(serializers.Serializer):
    """The defaults of a task (the service layer validates them; this documents them)."""

    description = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
    queue = serializers.CharField(
        allow_null=True, required=False, help_text="the queue of a create that names none (a queue's name)"
    )
    priority = serializers.IntegerField(
        allow_null=True, required=False, min_value=0, max_value=100, help_text="null: the create's default, 50"
    )
    sla = DurationIn(
        allow_null=True,
        required=False,
        help_text="ISO 8601 duration to due_at, in the queue's calendar; wins over the queue's",
    )
    candidate_groups = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=150), required=False, max_length=1000
    )
    required_skills = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=100), required=False, max_length=1000
    )
    sensitive_keys = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=200),
        required=False,
        max_length=1000,
        help_text="context_data keys masked on top of the queue's sensitive_keys",
    )
    result_schema = serializers.DictField(
        allow_null=True,
        required=False,
        help_text="JSON Schema (2020-12) of complete's result, references only inside it; replaces the lifecycle's",
    )
    form = TaskFormIn(allow_null=True, required=False)
    active = serializers.BooleanField(required=False, help_text="false: no longer applied to new items")


class TaskTypeIn(TaskDefaultsIn):
    workflow_id = serializers.RegexField(KEY, max_length=200, help_text='no "/"')
    task_name = serializers.RegexField(KEY, max_length=200, help_text='no "/"')
    workflow_name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class TaskTypePatchIn(TaskDefaultsIn):
    workflow_name = serializers.CharField(max_length=200, required=False, allow_blank=True)


class TaskTypeOut(TaskTypeIn):
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class WorkflowTaskIn(TaskDefaultsIn):
    name = serializers.RegexField(KEY, max_length=200, help_text="the task_name of its items; each once")


class WorkflowIn(serializers.Serializer):
    id = serializers.RegexField(KEY, max_length=200, help_text="the workflow_id of its items")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    tasks = serializers.ListField(child=WorkflowTaskIn(), min_length=1, max_length=1000)


class WorkflowOut(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    task_types = TaskTypeOut(many=True, help_text="the task types posted, as they are now")
    created = serializers.ListField(child=serializers.CharField())
    updated = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.ListField(child=serializers.CharField())


def _location(task_type) -> str:
    return reverse("task-type-detail", args=[task_type.workflow_id, task_type.task_name])


class TaskTypeListCreateView(WorkstreamAPIView):
    @extend_schema(
        operation_id="task_types_list",
        summary="Every task type",
        description="Admins, supervisors and service clients; filter by `workflow_id`.",
        responses={200: TaskTypeOut(many=True), **PROBLEM_RESPONSES(401, 403, 429)},
    )
    def get(self, request):
        found = task_type_list_for(actor=request.user)
        workflow_id = request.query_params.get("workflow_id")
        if workflow_id is not None:
            found = found.filter(workflow_id=workflow_id)
        return Response([task_type_snapshot(t) for t in found])

    @extend_schema(
        operation_id="task_types_create",
        request=TaskTypeIn,
        responses={201: TaskTypeOut, **PROBLEM_RESPONSES(400, 401, 403, 409, 413, 422, 429)},
    )
    def post(self, request):
        task_type = services.task_type_create(actor=request.user, data=_object_body(request))
        return Response(task_type_snapshot(task_type), status=201, headers={"Location": _location(task_type)})


class TaskTypeDetailView(WorkstreamAPIView):
    @extend_schema(
        operation_id="task_types_retrieve", responses={200: TaskTypeOut, **PROBLEM_RESPONSES(401, 403, 404, 429)}
    )
    def get(self, request, workflow_id: str, task_name: str):
        return Response(
            task_type_snapshot(task_type_get_for(actor=request.user, workflow_id=workflow_id, task_name=task_name))
        )

    @extend_schema(
        operation_id="task_types_partial_update",
        request=TaskTypePatchIn,
        responses={200: TaskTypeOut, **PROBLEM_RESPONSES(400, 401, 403, 404, 413, 429)},
    )
    def patch(self, request, workflow_id: str, task_name: str):
        task_type = services.task_type_update(
            actor=request.user, workflow_id=workflow_id, task_name=task_name, data=_object_body(request)
        )
        return Response(task_type_snapshot(task_type))


class WorkflowRegisterView(WorkstreamAPIView):
    @extend_schema(
        operation_id="workflows_register",
        summary="Register a workflow's task types in one call",
        description="Creates each task's type, or replaces its definition (a field left out goes back to its "
        "default; a re-post of the same body changes nothing), in one transaction: one bad task writes nothing. "
        "The workflow's task types the body does not list are kept as they are (deactivate one with PATCH "
        '{"active": false}). Admins, supervisors and service clients.',
        request=WorkflowIn,
        responses={200: WorkflowOut, **PROBLEM_RESPONSES(400, 401, 403, 409, 413, 422, 429)},
    )
    def post(self, request):
        done = services.workflow_register(actor=request.user, data=_object_body(request))
        return Response({**done, "task_types": [task_type_snapshot(t) for t in done["task_types"]]})
