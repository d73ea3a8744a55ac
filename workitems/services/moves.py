"""Moves between queues: the `move` command (supervisors, admins or the system), and the
capacity check that alerts on a filling queue and moves its excess to the overflow queue."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from config.timefmt import isoformat_z
from events.outbox import outbox_enqueue
from workitems import policy
from workitems.errors import NotAllowed, ValidationFailed
from workitems.models import OPEN_STATES, Queue, State, WorkItem
from workitems.services._core import Command, execute, push

# A queue alerts once when its open items reach this share of max_open, and again only after
# it has dropped below it.
ALERT_SHARE = 0.9


def _resolve_queue(name: Any) -> Queue:
    if isinstance(name, Queue):
        return name
    if not isinstance(name, str) or not name:
        raise ValidationFailed([{"field": "queue", "message": "the name of the queue to move the item to"}])
    found = Queue.objects.filter(name=name).first()
    if found is None:
        raise ValidationFailed([{"field": "queue", "message": f"unknown queue {name!r}"}])
    return found


@transaction.atomic
def work_item_move(
    *, item_id: int, actor=None, queue: Queue | str, expected_version: int | None = None, reason: str = ""
) -> WorkItem:
    """Move an item to another (active) queue. Work nobody has started is offered there afresh
    (an ASSIGNED holder released, a reservation dropped) and distributed by the target
    queue's strategy; started and suspended work keeps its holder. Audited, `workitem.moved.v1`."""
    audit_data: dict[str, Any] = {"reason": reason} if reason else {}
    transition_kwargs: dict[str, Any] = {}

    def target(cmd: Command) -> None:
        # After the state, role and input checks: a worker naming a queue learns nothing about it.
        to = _resolve_queue(queue)
        if to.pk == cmd.item.queue_id:
            raise ValidationFailed([{"field": "queue", "message": f"the item is already in queue {to.name}"}])
        if not to.active:
            raise ValidationFailed([{"field": "queue", "message": f"queue {to.name} is not active"}])
        transition_kwargs["queue"] = to
        audit_data.update(from_queue=cmd.item.queue.name, to_queue=to.name)
        if cmd.item.state == State.ASSIGNED:
            audit_data["released"] = cmd.item.assignee.username
        if cmd.item.reserved_for_id:
            audit_data["reservation_dropped"] = cmd.item.reserved_for.username

    item = execute(
        action="move",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"queue": queue.name if isinstance(queue, Queue) else queue},
        transition_kwargs=transition_kwargs,
        audit_data=audit_data,
        prepare=target,
    )
    return push(item)


# --- the capacity check ---------------------------------------------------------------------


def _open_count(queue: Queue) -> int:
    return WorkItem.objects.filter(queue=queue, state__in=OPEN_STATES).count()


def _alert(queue: Queue, open_count: int, now) -> None:
    data = {"queue": queue.name, "open": open_count, "max_open": queue.max_open, "threshold": ALERT_SHARE}
    record = audit_record(
        stream=f"queue:{queue.pk}",
        action="queue.capacity_alert",
        actor=None,
        data=data,
    )
    outbox_enqueue(
        event_type="queue.capacity_alert.v1",
        aggregate_type="queue",
        aggregate_id=queue.pk,
        sequence=record.seq,
        occurred_at=now,
        payload={**data, "at": isoformat_z(now)},
    )


def _next_unclaimed(queue: Queue) -> int | None:
    """The next unclaimed item to move (OFFERED, not reserved), row-locked: lowest priority
    first, then newest first (the oldest keep their place). Rows a claimer holds are skipped."""
    return (
        WorkItem.objects.select_for_update(skip_locked=True)
        .filter(queue=queue, state=State.OFFERED, reserved_for__isnull=True)
        .order_by("priority", "-created_at", "-id")
        .values_list("id", flat=True)
        .first()
    )


@transaction.atomic
def queue_rebalance(*, queue: Queue | str, actor=None, now=None) -> dict[str, Any]:
    """The capacity check of one queue: alert once per crossing of 90% of `max_open`, reset
    below it, and move the excess above `max_open` to `overflow_queue` (each item through
    `work_item_move`, as the system). Supervisors and admins, or the system (actor None).

    One transaction holding the queue row (FOR NO KEY UPDATE: items may still be created in
    and claimed from the queue meanwhile), so concurrent checks of one queue run one after
    the other and never move more than the excess between them."""
    if actor is not None and not policy.is_supervisor(actor):
        raise NotAllowed("only supervisors and admins rebalance queues")
    now = now or timezone.now()
    queue = Queue.objects.select_for_update(no_key=True).get(pk=_resolve_queue(queue).pk)
    result: dict[str, Any] = {"queue": queue.name, "max_open": queue.max_open, "alerted": False, "moved": []}
    open_count = _open_count(queue)
    above = queue.max_open is not None and open_count >= ALERT_SHARE * queue.max_open
    if above and queue.capacity_alerted_at is None:
        _alert(queue, open_count, now)
        result["alerted"] = True
    overflow = queue.overflow_queue if queue.overflow_queue_id and queue.overflow_queue.active else None
    excess = open_count - queue.max_open if queue.max_open is not None and overflow is not None else 0
    reason = f"queue {queue.name} over capacity"
    while len(result["moved"]) < excess and (item_id := _next_unclaimed(queue)) is not None:
        work_item_move(item_id=item_id, actor=None, queue=overflow, reason=reason)
        result["moved"].append(item_id)
    result["open"] = open_count - len(result["moved"])
    still_above = queue.max_open is not None and result["open"] >= ALERT_SHARE * queue.max_open
    alerted_at = (queue.capacity_alerted_at or now) if still_above else None
    if alerted_at != queue.capacity_alerted_at:
        Queue.objects.filter(pk=queue.pk).update(capacity_alerted_at=alerted_at)
    return result


def queues_capacity_check(*, now=None) -> dict[str, Any]:
    """Every queue with a `max_open`, and those with an alert to reset (beat job)."""
    names = Queue.objects.filter(Q(max_open__isnull=False) | Q(capacity_alerted_at__isnull=False))
    return {name: queue_rebalance(queue=name, now=now) for name in names.values_list("name", flat=True)}
