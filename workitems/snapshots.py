"""The work item as events carry it (the outbox payload)."""

from __future__ import annotations

from config.timefmt import isoformat_z
from workitems.models import WorkItem
from workitems.policy import masked_context


def work_item_snapshot(item: WorkItem) -> dict:
    """Scalar fields of the item after a change. Candidate lists are routing inputs and
    are left out: they would cost three queries per event and rarely matter downstream.
    The queue's sensitive context keys are masked: an event goes to every consumer of the
    bus and every subscription, not to a reader entitled to them (policy.sees_sensitive)."""
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
        "reserved_until": isoformat_z(item.reserved_until),
        "version": item.version,
        "escalation_level": item.escalation_level,
        "sla_state": item.sla_state,
        "breached_at": isoformat_z(item.breached_at),
        "due_at": isoformat_z(item.due_at),
        "follow_up_at": isoformat_z(item.follow_up_at),
        "context_data": masked_context(item, unmasked=False),  # the bus and webhooks: no one entitled reader
        "result": item.result,
        "outcome_reason": item.outcome_reason,
        "outcome": item.outcome,
        "optional": item.optional,
        "department": item.department_code,
        "sod_key": item.sod_key,
        "sod_scope": item.sod_scope,
        "case": item.case_id,
        "callback_url": item.callback_url,
        "correlation_id": item.correlation_id,
        "created_at": isoformat_z(item.created_at),
        "updated_at": isoformat_z(item.updated_at),
        "assigned_at": isoformat_z(item.assigned_at),
        "started_at": isoformat_z(item.started_at),
        "completed_at": isoformat_z(item.completed_at),
        "closed_at": isoformat_z(item.closed_at),
    }
