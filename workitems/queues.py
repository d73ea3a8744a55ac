"""Queue reads: which queues an actor sees, a queue's snapshot (its statistics: stats.selectors).
The commands that change queues are in workitems.services.definitions."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.duration import duration_iso_string

from config.timefmt import isoformat_z
from workitems import policy
from workitems.errors import NotFound
from workitems.models import Queue


def queue_list_for(*, actor) -> QuerySet[Queue]:
    """Queues `actor` may see: all for admins, supervisors and services; otherwise those it is a
    member of (policy.queue_member_filter: a candidate group, or a role assignment valid now)."""
    qs = Queue.objects.select_related("escalation_queue", "lifecycle", "department").prefetch_related(
        "candidate_groups", "supervisor_groups"
    )
    if policy.sees_everything(actor):
        return qs
    return qs.filter(policy.queue_member_filter(actor, queue_ref="pk"))


def queue_get_for(*, actor, name: str) -> Queue:
    queue = queue_list_for(actor=actor).filter(name=name).first()
    if queue is None:
        raise NotFound(f"queue {name!r} not found")
    return queue


def queue_snapshot(queue: Queue) -> dict[str, Any]:
    return {
        "name": queue.name,
        "description": queue.description,
        "strategy": queue.strategy,
        "candidate_groups": sorted(g.name for g in queue.candidate_groups.all()),
        "capacity_per_user": queue.capacity_per_user,
        "sla": duration_iso_string(queue.sla) if queue.sla else None,
        "escalation_queue": queue.escalation_queue.name if queue.escalation_queue_id else None,
        "lifecycle": queue.lifecycle.name if queue.lifecycle_id else None,
        "sensitive_keys": queue.sensitive_keys,
        "sensitive_roles": queue.sensitive_roles,
        "encrypted_keys": queue.encrypted_keys,
        "reservation_timeout": duration_iso_string(queue.reservation_timeout) if queue.reservation_timeout else None,
        "calendar": queue.calendar.name if queue.calendar_id else None,
        "at_risk_ratio": queue.at_risk_ratio,
        "escalation_policy": queue.escalation_policy,
        "max_open": queue.max_open,
        "overflow_queue": queue.overflow_queue.name if queue.overflow_queue_id else None,
        "supervisor_groups": sorted(g.name for g in queue.supervisor_groups.all()),
        "channels": queue.channels,
        "critical": queue.critical,
        "weight": queue.weight,
        "department": queue.department.code if queue.department_id else None,
        "active": queue.active,
        "created_at": isoformat_z(queue.created_at),
        "updated_at": isoformat_z(queue.updated_at),
    }


def lifecycle_snapshot(lifecycle) -> dict[str, Any]:
    """A lifecycle definition as its audit records hold it."""
    return {
        "name": lifecycle.name,
        "description": lifecycle.description,
        "start_step": lifecycle.start_step,
        "allow_suspend": lifecycle.allow_suspend,
        "allow_release": lifecycle.allow_release,
        "allow_delegate": lifecycle.allow_delegate,
        "result_schema": lifecycle.result_schema,
        "sub_statuses": lifecycle.sub_statuses,
        "action_roles": lifecycle.action_roles,
    }


def calendar_snapshot(calendar) -> dict[str, Any]:
    """A business calendar as the API shows it and its audit records hold it."""
    return {
        "name": calendar.name,
        "time_zone": calendar.time_zone,
        "working_hours": calendar.working_hours,
        "holidays": calendar.holidays,
        "country": calendar.country,
        "subdivision": calendar.subdivision,
    }
