"""Task-type reads: who sees them, a task type's snapshot (what the API shows and its audit
records hold). The commands that change task types are in workitems.services.task_types."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.duration import duration_iso_string

from config.timefmt import isoformat_z
from workitems import policy
from workitems.errors import NotAllowed, NotFound
from workitems.models import TaskType


def task_type_list_for(*, actor) -> QuerySet[TaskType]:
    """Every task type, for the callers who see every queue (admins, supervisors, service
    clients); a worker is refused (they meet task types only through their items)."""
    if not policy.sees_everything(actor):
        raise NotAllowed("only admins, supervisors and service clients read task types")
    return TaskType.objects.select_related("queue").prefetch_related("candidate_groups")


def task_type_get_for(*, actor, workflow_id: str, task_name: str) -> TaskType:
    found = task_type_list_for(actor=actor).filter(workflow_id=workflow_id, task_name=task_name).first()
    if found is None:
        raise NotFound(f"task type {workflow_id}/{task_name} not found")
    return found


def task_type_snapshot(task_type: TaskType, *, times: bool = True) -> dict[str, Any]:
    """A task type as the API shows it (`times`) and its audit records hold it (without)."""
    out = {
        "workflow_id": task_type.workflow_id,
        "task_name": task_type.task_name,
        "workflow_name": task_type.workflow_name,
        "description": task_type.description,
        "queue": task_type.queue.name if task_type.queue_id else None,
        "priority": task_type.priority,
        "sla": duration_iso_string(task_type.sla) if task_type.sla else None,
        "candidate_groups": sorted(g.name for g in task_type.candidate_groups.all()),
        "required_skills": task_type.required_skills,
        "sensitive_keys": task_type.sensitive_keys,
        "result_schema": task_type.result_schema,
        "form": task_type.form,
        "active": task_type.active,
    }
    if times:
        out["created_at"] = isoformat_z(task_type.created_at)
        out["updated_at"] = isoformat_z(task_type.updated_at)
    return out
