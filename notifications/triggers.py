"""Which outbox events tell whom: an event → (trigger, recipients, title, body).

- assigned, reserved (also an item created so for a named assignee), delegated, claimed:
  the new assignee (the reservee for `reserved`), unless they did it themselves (a
  self-claim tells nobody);
- sla_at_risk, sla_breached: the assignee and the queue's supervisors;
- escalated: each target of the level's `notify` (`assignee`, `supervisors`, `candidates`:
  the item's pool, or a group name: its members); an escalation without `notify` tells nobody;
- capacity_alert (`queue.capacity_alert.v1`): the queue's supervisors.

A queue's supervisors are the members of its `supervisor_groups`, or, when it names none,
the holders of the supervisor platform role (they see every queue). Only active users are
told. Which channels carry a queue's alerts is the notifier's business (its `channels`).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth import get_user_model

from directory.roles import SUPERVISOR, role_group_name
from distribution.constraints import pool_user_ids
from events.models import OutboxEvent
from notifications import models as m
from workitems.models import Queue, WorkItem

CREATED = "workitem.created.v1"
CAPACITY = "queue.capacity_alert.v1"
EVENT_TRIGGERS = {
    "workitem.assigned.v1": m.ASSIGNED,
    "workitem.reserved.v1": m.RESERVED,
    "workitem.delegated.v1": m.DELEGATED,
    "workitem.claimed.v1": m.CLAIMED,
    "workitem.sla_at_risk.v1": m.SLA_AT_RISK,
    "workitem.sla_breached.v1": m.SLA_BREACHED,
    "workitem.escalated.v1": m.ESCALATED,
}
# A queue's alerts: they go through the queue's `channels` (Slack, Teams, … as well as people).
CHANNEL_TRIGGERS = frozenset({m.SLA_AT_RISK, m.SLA_BREACHED, m.ESCALATED, m.CAPACITY_ALERT, m.DAILY_SUMMARY})
# The critical ones: they also page (PagerDuty) on a queue marked `critical`.
PAGED_TRIGGERS = frozenset({m.SLA_BREACHED, m.CAPACITY_ALERT})

_TITLES = {
    m.ASSIGNED: "Assigned to you",
    m.RESERVED: "Reserved for you",
    m.DELEGATED: "Delegated to you",
    m.CLAIMED: "Claimed for you",
    m.SLA_AT_RISK: "SLA at risk",
    m.SLA_BREACHED: "SLA breached",
    m.ESCALATED: "Escalated",
    m.CAPACITY_ALERT: "Queue filling up",
    m.DAILY_SUMMARY: "Daily summary",
}


@dataclass(frozen=True)
class Told:
    """What one event tells: its trigger, the users (id → username), and the message."""

    trigger: str
    users: dict[int, str]
    title: str
    body: str
    work_item_id: int | None
    queue: str


def supervisors_of(queue: Queue | None) -> set[int]:
    """The active members of the queue's `supervisor_groups`, else every supervisor."""
    users = get_user_model().objects.filter(is_active=True)
    if queue is not None:
        groups = list(queue.supervisor_groups.values_list("id", flat=True))
        if groups:
            return set(users.filter(groups__in=groups).values_list("id", flat=True))
    return set(users.filter(groups__name=role_group_name(SUPERVISOR)).values_list("id", flat=True))


def _queue(snapshot: dict) -> Queue | None:
    name = snapshot.get("queue")
    return Queue.objects.filter(name=name).first() if isinstance(name, str) and name else None


def _usernames(names) -> set[int]:
    names = [n for n in names if n]
    if not names:
        return set()
    return set(get_user_model().objects.filter(username__in=names).values_list("id", flat=True))


def _target(target: str, snapshot: dict) -> set[int]:
    if target == "assignee":
        return _usernames([snapshot.get("assignee")])
    if target == "supervisors":
        return supervisors_of(_queue(snapshot))
    if target == "candidates":
        item = WorkItem.objects.select_related("queue").filter(pk=snapshot.get("id")).first()
        return pool_user_ids(item) if item is not None else set()
    return set(get_user_model().objects.filter(groups__name=target).values_list("id", flat=True))


def _recipients(trigger: str, snapshot: dict, transition: dict) -> set[int]:
    if trigger in (m.ASSIGNED, m.DELEGATED, m.CLAIMED, m.RESERVED):
        name = snapshot.get("reserved_for" if trigger == m.RESERVED else "assignee")
        if not name or name == transition.get("actor"):
            return set()  # nobody holds it, or they did it themselves
        return _usernames([name])
    if trigger in (m.SLA_AT_RISK, m.SLA_BREACHED):
        return _usernames([snapshot.get("assignee")]) | supervisors_of(_queue(snapshot))
    targets = transition.get("notify") or []
    return set().union(*(_target(str(t), snapshot) for t in targets)) if targets else set()


def _body(trigger: str, snapshot: dict, transition: dict) -> str:
    what = snapshot.get("title") or snapshot.get("task_name") or "work item"
    parts = [f"{what} (#{snapshot.get('id')}) in queue {snapshot.get('queue')}, priority {snapshot.get('priority')}"]
    if snapshot.get("due_at"):
        parts.append(f"due {snapshot['due_at']}")
    if trigger == m.ESCALATED and transition.get("sla_level"):
        parts.append(f"SLA escalation level {transition['sla_level']}")
    if trigger in (m.ASSIGNED, m.DELEGATED, m.CLAIMED) and transition.get("actor"):
        parts.append(f"by {transition['actor']}")
    return "; ".join(parts)


def active_users(ids) -> dict[int, str]:
    return dict(
        get_user_model().objects.filter(pk__in=ids, is_active=True).order_by("id").values_list("id", "username")
    )


def _capacity(payload: dict) -> Told | None:
    queue = _queue(payload)
    if queue is None:
        return None
    share = f"{payload.get('open')} of {payload.get('max_open')} open"
    return Told(
        trigger=m.CAPACITY_ALERT,
        users=active_users(supervisors_of(queue)),
        title=f"{_TITLES[m.CAPACITY_ALERT]}: {queue.name} at {share}"[:300],
        body=f"Queue {queue.name} holds {share} items (the alert fires at {payload.get('threshold', 0.9):.0%})",
        work_item_id=None,
        queue=queue.name,
    )


def told_by(event: OutboxEvent) -> Told | None:
    """What `event` tells, or None when it is not a notification trigger."""
    trigger = EVENT_TRIGGERS.get(event.event_type)
    payload = event.payload if isinstance(event.payload, dict) else {}
    if event.event_type == CAPACITY:
        return _capacity(payload)
    snapshot = payload.get("work_item") if isinstance(payload.get("work_item"), dict) else {}
    transition = payload.get("transition") if isinstance(payload.get("transition"), dict) else {}
    if event.event_type == CREATED:  # created for a named assignee: given or reserved in the same change
        trigger = m.RESERVED if snapshot.get("reserved_for") else m.ASSIGNED if snapshot.get("assignee") else None
    if trigger is None or not snapshot:
        return None
    users = active_users(_recipients(trigger, snapshot, transition))
    what = snapshot.get("title") or snapshot.get("task_name") or "work item"
    return Told(
        trigger=trigger,
        users=users,
        title=f"{_TITLES[trigger]}: {what} (#{snapshot.get('id')})"[:300],
        body=_body(trigger, snapshot, transition),
        work_item_id=snapshot.get("id") if isinstance(snapshot.get("id"), int) else None,
        queue=str(snapshot.get("queue") or ""),
    )
