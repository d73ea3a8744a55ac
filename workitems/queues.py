"""Queue commands (create, update) and reads (visibility, stats). Changes are audited."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count, F, Min, Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_duration
from django.utils.duration import duration_iso_string

from audit.services import audit_record
from config import wsconfig
from config.timefmt import isoformat_z
from directory.roles import ADMIN, SERVICE, SUPERVISOR, roles_of
from workitems.errors import NotAllowed, NotFound, ValidationFailed
from workitems.models import HELD_STATES, OPEN_STATES, STRATEGY_CHOICES, Lifecycle, Queue, State, WorkItem
from workitems.selectors import group_ids_of
from workitems.services import nul_errors

FIELDS = (
    "name",
    "description",
    "strategy",
    "candidate_groups",
    "capacity_per_user",
    "sla",
    "escalation_queue",
    "lifecycle",
    "sensitive_keys",
    "reservation_timeout",
    "active",
)
STRATEGIES = [c[0] for c in STRATEGY_CHOICES if c[0] != "direct"]


def queue_list_for(*, actor) -> QuerySet[Queue]:
    """Queues `actor` may see: all for admins, supervisors and services; a worker's own otherwise."""
    qs = Queue.objects.select_related("escalation_queue", "lifecycle").prefetch_related("candidate_groups")
    if roles_of(actor) & {ADMIN, SUPERVISOR, SERVICE}:
        return qs
    return qs.filter(candidate_groups__in=group_ids_of(actor)).distinct()


def queue_get_for(*, actor, name: str) -> Queue:
    queue = queue_list_for(actor=actor).filter(name=name).first()
    if queue is None:
        raise NotFound(f"queue {name!r} not found")
    return queue


def _check_admin(actor) -> None:
    if actor is not None and ADMIN not in roles_of(actor):
        raise NotAllowed("only admins create and change queues")


def _clean(data: dict, *, partial: bool, current: Queue | None) -> dict[str, Any]:
    """Validate and resolve a queue body; ValidationFailed lists every problem."""
    errors: list[dict[str, str]] = []
    out: dict[str, Any] = {}
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "body", "message": "must be a JSON object"}])
    nul = nul_errors(data)
    if nul:
        raise ValidationFailed(nul)
    for key in sorted(set(data) - set(FIELDS)):
        errors.append({"field": key, "message": "unknown field"})

    def err(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    if "name" in data or not partial:
        name = data.get("name")
        if current is not None and "name" in data and name != current.name:
            err("name", "a queue's name cannot change")
        elif not isinstance(name, str) or not name or len(name) > 100 or not _slug(name):
            err("name", "required: a slug (letters, digits, - and _) of at most 100 characters")
        elif current is None and Queue.objects.filter(name=name).exists():
            err("name", f"queue {name!r} already exists")
        else:
            out["name"] = name
    if "description" in data:
        if not isinstance(data["description"], str):
            err("description", "must be a string")
        else:
            out["description"] = data["description"]
    if "strategy" in data:
        strategy = data["strategy"]
        if strategy not in STRATEGIES:
            err("strategy", f"must be one of {', '.join(STRATEGIES)}")
        elif not wsconfig.get().strategy_enabled(strategy):
            err("strategy", f"strategy {strategy} is switched off in the configuration")
        else:
            out["strategy"] = strategy
    if "candidate_groups" in data:
        names = data["candidate_groups"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            err("candidate_groups", "must be a list of group names")
        else:
            groups = list(Group.objects.filter(name__in=names))
            missing = sorted(set(names) - {g.name for g in groups})
            if missing:
                err("candidate_groups", f"unknown groups: {', '.join(missing)}")
            out["candidate_groups"] = groups
    if "capacity_per_user" in data:
        cap = data["capacity_per_user"]
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= 100_000):
            err("capacity_per_user", "must be null or an integer from 1 to 100000")
        else:
            out["capacity_per_user"] = cap
    if "sla" in data:
        raw = data["sla"]
        sla = parse_duration(raw) if isinstance(raw, str) and raw.startswith("P") else None
        if raw is not None and (sla is None or sla <= timedelta(0)):
            err("sla", "must be null or a positive ISO 8601 duration, e.g. PT4H")
        else:
            out["sla"] = sla
    if "reservation_timeout" in data:
        raw = data["reservation_timeout"]
        timeout = parse_duration(raw) if isinstance(raw, str) and raw.startswith("P") else None
        if raw is not None and (timeout is None or timeout <= timedelta(0)):
            err("reservation_timeout", "must be null or a positive ISO 8601 duration, e.g. PT5M")
        else:
            out["reservation_timeout"] = timeout
    if "escalation_queue" in data:
        target = data["escalation_queue"]
        if target is None:
            out["escalation_queue"] = None
        elif not isinstance(target, str) or not (q := Queue.objects.filter(name=target).first()):
            err("escalation_queue", f"unknown queue {target!r}")
        elif current is not None and q.pk == current.pk:
            err("escalation_queue", "a queue cannot escalate to itself")
        else:
            out["escalation_queue"] = q
    if "lifecycle" in data:
        target = data["lifecycle"]
        if target is None:
            out["lifecycle"] = None
        elif not isinstance(target, str) or not (lc := Lifecycle.objects.filter(name=target).first()):
            err("lifecycle", f"unknown lifecycle {target!r}")
        else:
            out["lifecycle"] = lc
    if "sensitive_keys" in data:
        keys = data["sensitive_keys"]
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            err("sensitive_keys", "must be a list of context_data keys")
        else:
            out["sensitive_keys"] = keys
    if "active" in data:
        if not isinstance(data["active"], bool):
            err("active", "must be true or false")
        else:
            out["active"] = data["active"]
    if errors:
        raise ValidationFailed(errors)
    return out


def _slug(value: str) -> bool:
    return all(c.isalnum() or c in "-_" for c in value) and value.isascii()


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
        "reservation_timeout": duration_iso_string(queue.reservation_timeout) if queue.reservation_timeout else None,
        "active": queue.active,
        "created_at": isoformat_z(queue.created_at),
        "updated_at": isoformat_z(queue.updated_at),
    }


def _apply(queue: Queue, values: dict[str, Any]) -> None:
    groups = values.pop("candidate_groups", None)
    for key, value in values.items():
        setattr(queue, key, value)
    queue.full_clean(exclude=["candidate_groups"], validate_unique=False)
    queue.save()
    if groups is not None:
        queue.candidate_groups.set(groups)


@transaction.atomic
def queue_create(*, actor, data: dict) -> Queue:
    """Create a queue (admins)."""
    _check_admin(actor)
    values = _clean(data, partial=False, current=None)
    queue = Queue()
    _apply(queue, values)
    audit_record(stream=f"queue:{queue.pk}", action="queue.create", actor=actor, data=queue_snapshot(queue))
    return queue


@transaction.atomic
def queue_update(*, actor, name: str, data: dict) -> Queue:
    """Change a queue's settings (admins); the audit record holds the before and after."""
    _check_admin(actor)
    queue = Queue.objects.select_for_update().filter(name=name).first()
    if queue is None:
        raise NotFound(f"queue {name!r} not found")
    before = queue_snapshot(queue)
    _apply(queue, _clean(data, partial=True, current=queue))
    after = queue_snapshot(queue)
    changes = {k: [before[k], after[k]] for k in after if before[k] != after[k] and k != "updated_at"}
    audit_record(stream=f"queue:{queue.pk}", action="queue.update", actor=actor, data={"changes": changes})
    return queue


def queue_stats(*, queue: Queue, window_days: int = 30) -> dict[str, Any]:
    """Load, age and SLA figures of one queue, from the open-state partial indexes."""
    now = timezone.now()
    open_items = WorkItem.objects.filter(queue=queue, state__in=OPEN_STATES)
    by_state = dict(open_items.values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    agg = open_items.aggregate(oldest=Min("created_at"), overdue=Count("id", filter=Q(due_at__lt=now)))
    closed = WorkItem.objects.filter(
        queue=queue, state=State.COMPLETED, completed_at__gte=now - timedelta(days=window_days), due_at__isnull=False
    ).aggregate(total=Count("id"), on_time=Count("id", filter=Q(completed_at__lte=F("due_at"))))
    load = (
        WorkItem.objects.filter(queue=queue, state__in=HELD_STATES, assignee__isnull=False)
        .values_list("assignee__username")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    return {
        "queue": queue.name,
        "open": sum(by_state.values()),
        "offered": by_state.get(State.OFFERED, 0),
        "assigned": by_state.get(State.ASSIGNED, 0),
        "in_progress": by_state.get(State.IN_PROGRESS, 0),
        "suspended": by_state.get(State.SUSPENDED, 0),
        "overdue": agg["overdue"],
        "oldest_age_seconds": int((now - agg["oldest"]).total_seconds()) if agg["oldest"] else None,
        "sla_compliance": round(closed["on_time"] / closed["total"], 4) if closed["total"] else None,
        "sla_window_days": window_days,
        "completed_in_window": closed["total"],
        "per_user_load": [{"user": u, "open": n} for u, n in load],
    }
