"""The work item as events carry it (the outbox payload)."""

from __future__ import annotations

from workitems.models import WorkItem


def _iso(value):
    return value.isoformat() if value else None


def work_item_snapshot(item: WorkItem) -> dict:
    """Scalar fields of the item after a change. Candidate lists are routing inputs and
    are left out: they would cost three queries per event and rarely matter downstream."""
    return {
        "id": item.pk,
        "workflow_id": item.workflow_id,
        "run_id": item.run_id,
        "task_name": item.task_name,
        "title": item.title,
        "queue": item.queue.name,
        "priority": item.priority,
        "state": item.state,
        "sub_status": item.sub_status,
        "assignee": item.assignee.username if item.assignee_id else None,
        "reserved_for": item.reserved_for.username if item.reserved_for_id else None,
        "reserved_until": _iso(item.reserved_until),
        "version": item.version,
        "escalation_level": item.escalation_level,
        "due_at": _iso(item.due_at),
        "follow_up_at": _iso(item.follow_up_at),
        "context_data": item.context_data,
        "result": item.result,
        "outcome_reason": item.outcome_reason,
        "sod_key": item.sod_key,
        "callback_url": item.callback_url,
        "correlation_id": item.correlation_id,
        "created_at": _iso(item.created_at),
        "updated_at": _iso(item.updated_at),
        "assigned_at": _iso(item.assigned_at),
        "started_at": _iso(item.started_at),
        "completed_at": _iso(item.completed_at),
        "closed_at": _iso(item.closed_at),
    }
