"""Input and output shapes of the work-item API.

Output is built by `item_representation` (a plain function: DRF serializers
cost ~1.7 ms of Python per object on the hot path, a quarter of it rebuilding their
fields on every request); `WorkItemOut` declares the
same shape for the OpenAPI document, and the schema tests keep the two equal.
"""

from __future__ import annotations

from rest_framework import serializers

from config import wsconfig
from config.timefmt import isoformat_z as _iso
from distribution.strategies import strategy_choices
from workitems.api.fields import QueueChoiceIn, QueuesIn
from workitems.models import SlaState, State, WorkItem
from workitems.policy import allowed_actions_for, masked_context, sees_sensitive

ITEM_STRATEGY_CHOICES = strategy_choices()


class WorkItemCreateIn(serializers.Serializer):
    """Create body (the service layer validates it fully; this documents it)."""

    workflow_id = serializers.CharField(max_length=200)
    run_id = serializers.CharField(max_length=200, required=False)
    task_name = serializers.CharField(max_length=200)
    title = serializers.CharField(max_length=500, required=False)
    description = serializers.CharField(required=False)
    queue = QueueChoiceIn(required=False)
    priority = serializers.IntegerField(
        min_value=0, max_value=100, required=False, help_text="else the task type's, else 50"
    )
    due_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="else now + the task type's SLA, else + the queue's"
    )
    follow_up_at = serializers.DateTimeField(required=False, allow_null=True)
    context_data = serializers.DictField(required=False)
    candidate_users = serializers.ListField(child=serializers.CharField(), required=False)
    candidate_groups = serializers.ListField(child=serializers.CharField(), required=False)
    excluded_users = serializers.ListField(child=serializers.CharField(), required=False)
    required_skills = serializers.ListField(child=serializers.CharField(), required=False)
    sod_key = serializers.CharField(max_length=100, required=False)
    sod_scope = serializers.ChoiceField(
        choices=["run", "case"],
        required=False,
        help_text="what the SoD key spans: the workflow run (default), or with `case` the case's items too",
    )
    case = serializers.CharField(
        max_length=100, required=False, help_text="an open case's number: the item joins it (and its due_at)"
    )
    department = serializers.CharField(
        max_length=100,
        required=False,
        allow_null=True,
        help_text="department code: only members of it and its sub-departments are candidates "
        "(else the queue's department, if it has one)",
    )
    optional = serializers.BooleanField(required=False, help_text="may be skipped (skip); default false")
    assignee = serializers.CharField(required=False, allow_null=True, help_text="username (direct assignment)")
    strategy = serializers.ChoiceField(choices=ITEM_STRATEGY_CHOICES, required=False)
    callback_url = serializers.URLField(required=False)
    correlation_id = serializers.CharField(max_length=200, required=False)


class BulkCreateIn(serializers.Serializer):
    items = serializers.ListField(
        child=WorkItemCreateIn(), min_length=1, max_length=wsconfig.get().performance.bulkCreateMax
    )


class WorkItemOut(serializers.Serializer):
    id = serializers.IntegerField()
    workflow_id = serializers.CharField()
    run_id = serializers.CharField()
    task_name = serializers.CharField()
    title = serializers.CharField()
    description = serializers.CharField()
    queue = serializers.CharField()
    priority = serializers.IntegerField()
    due_at = serializers.DateTimeField(allow_null=True)
    follow_up_at = serializers.DateTimeField(allow_null=True)
    context_data = serializers.DictField()
    candidate_users = serializers.ListField(child=serializers.CharField())
    candidate_groups = serializers.ListField(child=serializers.CharField())
    excluded_users = serializers.ListField(child=serializers.CharField())
    required_skills = serializers.ListField(child=serializers.CharField())
    sod_key = serializers.CharField()
    sod_scope = serializers.ChoiceField(choices=["run", "case"])
    case = serializers.CharField(allow_null=True, help_text="the number of the case the item belongs to")
    department = serializers.CharField(
        allow_null=True, help_text="code of the department whose subtree its candidates come from (routing)"
    )
    optional = serializers.BooleanField(help_text="may be skipped when no longer needed")
    strategy = serializers.CharField()
    callback_url = serializers.CharField()
    correlation_id = serializers.CharField()
    state = serializers.ChoiceField(choices=State.choices)
    sub_status = serializers.CharField()
    assignee = serializers.CharField(allow_null=True)
    reserved_for = serializers.CharField(
        allow_null=True, help_text="the user the item is reserved for (push with acceptance)"
    )
    reserved_until = serializers.DateTimeField(allow_null=True)
    version = serializers.IntegerField()
    escalation_level = serializers.IntegerField()
    sla_state = serializers.ChoiceField(choices=SlaState.choices)
    breached_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    assigned_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    result = serializers.JSONField(allow_null=True)
    outcome_reason = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["completed", "failed", "cancelled", "skipped"],
        allow_null=True,
        help_text="how it ended; null while open",
    )
    allowed_actions = serializers.ListField(child=serializers.CharField())


class WorkItemPageOut(serializers.Serializer):
    results = WorkItemOut(many=True)
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class BulkCreateOut(serializers.Serializer):
    items = WorkItemOut(many=True)


class BulkItemRef(serializers.Serializer):
    id = serializers.IntegerField(min_value=1, help_text="the work item")
    version = serializers.IntegerField(min_value=1, required=False, help_text="the version you saw (412 if stale)")


class BulkActionIn(serializers.Serializer):
    """The body every bulk action takes; each adds its own arguments (see the subclasses)."""

    items = serializers.ListField(
        child=BulkItemRef(), min_length=1, max_length=wsconfig.get().performance.bulkCreateMax
    )
    atomic = serializers.BooleanField(
        required=False, default=False, help_text="true: all or nothing (the first refusal is the answer)"
    )


class BulkClaimIn(BulkActionIn):
    pass


class BulkReassignIn(BulkActionIn):
    user = serializers.CharField(help_text="username: an active person in each item's pool")
    override = serializers.BooleanField(required=False, help_text="supervisors and admins: outside the pool")


class BulkCancelIn(BulkActionIn):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class BulkMoveIn(BulkActionIn):
    queue = serializers.CharField(help_text="the name of the active queue to move the items to")


class BulkResultOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.IntegerField(help_text="200, or the status the item's problem has")
    item = WorkItemOut(required=False, help_text="the item after the action (on success)")
    problem = serializers.DictField(required=False, help_text="the problem details that refused it")


class BulkActionOut(serializers.Serializer):
    results = BulkResultOut(many=True, help_text="one per item asked, in the order asked")
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()


class ResultIn(serializers.Serializer):
    result = serializers.DictField(required=False, default=dict)


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class WorkItemUpdateIn(serializers.Serializer):
    """PATCH /workitems/{id}: the members sent change (the service layer validates them)."""

    priority = serializers.IntegerField(min_value=0, max_value=100, required=False)
    due_at = serializers.DateTimeField(required=False, allow_null=True, help_text="null: no deadline")
    follow_up_at = serializers.DateTimeField(required=False, allow_null=True)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, help_text="for the audit trail")


class UserIn(serializers.Serializer):
    user = serializers.CharField(
        help_text="username: an active person (worker or supervisor, not a service client) in the item's pool"
    )
    override = serializers.BooleanField(
        required=False,
        help_text="supervisors and admins only (403 for others): give the item to a person outside its pool "
        "(not named on it, not a member of its queue); audited as an override",
    )


class QueueArgIn(serializers.Serializer):
    queue = serializers.CharField(help_text="the name of the active queue to move the item to")


class SubStatusIn(serializers.Serializer):
    sub_status = serializers.CharField()


class ForwardIn(serializers.Serializer):
    users = serializers.ListField(
        child=serializers.CharField(max_length=150), required=False, help_text="usernames: its new candidate users"
    )
    groups = serializers.ListField(
        child=serializers.CharField(max_length=150), required=False, help_text="group names: its new candidate groups"
    )


class ClaimNextIn(serializers.Serializer):
    queue = QueuesIn(required=False)
    queues = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=100),
        min_length=1,
        max_length=20,
        required=False,
        help_text="these queues, by score (as `queue` with a list)",
    )


class AuditRecordOut(serializers.Serializer):
    id = serializers.IntegerField()
    seq = serializers.IntegerField()
    work_item = serializers.IntegerField(allow_null=True)
    action = serializers.CharField()
    actor = serializers.CharField(allow_null=True)
    channel = serializers.CharField()
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    data = serializers.DictField()
    request_id = serializers.CharField()
    correlation_id = serializers.CharField()
    created_at = serializers.DateTimeField()
    hash = serializers.CharField()
    prev_hash = serializers.CharField()


def _names(item: WorkItem, attr: str, field: str) -> list[str]:
    known = getattr(item, "list_names", None)  # read with the row (selectors.work_item_get_for)
    if known is not None and attr in known:
        return sorted(known[attr])
    cache = getattr(item, "_prefetched_objects_cache", {})
    if attr in cache:
        return sorted(getattr(o, field) for o in cache[attr])
    return sorted(getattr(item, attr).values_list(field, flat=True))


def item_representation(item: WorkItem, actor) -> dict:
    """The API representation of `item` as `actor` may see it."""
    return {
        "id": item.pk,
        "workflow_id": item.workflow_id,
        "run_id": item.run_id,
        "task_name": item.task_name,
        "title": item.title,
        "description": item.description,
        "queue": item.queue.name,
        "priority": item.priority,
        "due_at": _iso(item.due_at),
        "follow_up_at": _iso(item.follow_up_at),
        "context_data": masked_context(item, unmasked=sees_sensitive(actor, item)),
        "candidate_users": _names(item, "candidate_users", "username"),
        "candidate_groups": _names(item, "candidate_groups", "name"),
        "excluded_users": _names(item, "excluded_users", "username"),
        "required_skills": item.required_skills,
        "sod_key": item.sod_key,
        "sod_scope": item.sod_scope,
        "case": item.case_id,
        "department": item.department_code,
        "optional": item.optional,
        "strategy": item.strategy,
        "callback_url": item.callback_url,
        "correlation_id": item.correlation_id,
        "state": item.state,
        "sub_status": item.sub_status,
        "assignee": item.assignee.username if item.assignee_id else None,
        "reserved_for": item.reserved_for.username if item.reserved_for_id else None,
        "reserved_until": _iso(item.reserved_until),
        "version": item.version,
        "escalation_level": item.escalation_level,
        "sla_state": item.sla_state,
        "breached_at": _iso(item.breached_at),
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
        "assigned_at": _iso(item.assigned_at),
        "started_at": _iso(item.started_at),
        "completed_at": _iso(item.completed_at),
        "result": item.result,
        "outcome_reason": item.outcome_reason,
        "outcome": item.outcome,
        "allowed_actions": allowed_actions_for(item, actor),
    }


def audit_representation(rec) -> dict:
    return {
        "id": rec.id,
        "seq": rec.seq,
        "work_item": rec.work_item_id,
        "action": rec.action,
        "actor": rec.actor_username or None,
        "channel": rec.channel,
        "from_state": rec.from_state,
        "to_state": rec.to_state,
        "data": rec.data,
        "request_id": rec.request_id,
        "correlation_id": rec.correlation_id,
        "created_at": _iso(rec.created_at),
        "hash": rec.hash,
        "prev_hash": rec.prev_hash,
    }
