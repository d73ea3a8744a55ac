"""Moves between queues: the `move` command (supervisors, admins or the system), and the
capacity check that alerts on a filling queue and moves its excess to the overflow queue."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from audit.services import audit_record
from config.timefmt import isoformat_z
from directory.models import Profile
from distribution import constraints
from events.outbox import outbox_enqueue
from workitems import errors, policy
from workitems.errors import Conflict, NotAllowed, ValidationFailed
from workitems.models import OPEN_STATES, Queue, State, WorkItem
from workitems.services._core import Command, execute, lock_for_system, push

log = logging.getLogger(__name__)

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
            raise Conflict(f"the item is already in queue {to.name}")
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


# --- a person over capacity -----------------------------------------------------------------


def _loads(user) -> tuple[int, dict[int, int]]:
    """`user`'s load (constraints.load_filter: held plus reserved), overall and per queue."""
    rows = WorkItem.objects.filter(constraints.load_filter(user.pk)).values_list("queue_id").annotate(n=Count("id"))
    per_queue = dict(rows)
    return sum(per_queue.values()), per_queue


@transaction.atomic
def _redistribute(item_id: int, user, reason: str) -> WorkItem | None:
    item = lock_for_system(item_id)
    if item.state != State.ASSIGNED or item.assignee_id != user.pk or not item.lifecycle.allow_release:
        return None  # started, moved on or not releasable meanwhile
    item = execute(
        action="release",
        item_id=item.pk,
        actor=None,
        expected_version=None,
        audit_data={"reason": reason},
        locked_item=item,
    )
    return push(item, exclude_ids=[user.pk])


def work_items_redistribute_over_capacity(*, user, reason: str = "over capacity") -> list[int]:
    """After a change that leaves `user` above their capacity (the profile's, overall, or a
    queue's `capacity_per_user`: a capacity lowered, a return from absence), release their
    not-yet-started items (ASSIGNED), lowest priority first, then newest, until they are
    within it again; each goes back through its queue's distribution (never to them) as the
    system, in its own savepoint. Started and suspended work stays theirs. Returns the ids."""
    capacity = Profile.objects.filter(user_id=user.pk).values_list("capacity", flat=True).first()
    total, per_queue = _loads(user)
    limits = dict(
        Queue.objects.filter(pk__in=per_queue, capacity_per_user__isnull=False).values_list("id", "capacity_per_user")
    )
    if constraints.fits(total, capacity) and all(constraints.fits(n, limits.get(q)) for q, n in per_queue.items()):
        return []
    released = []
    candidates = (
        WorkItem.objects.filter(assignee_id=user.pk, state=State.ASSIGNED)
        .order_by("priority", "-created_at", "-id")
        .values_list("id", "queue_id")
    )
    for item_id, queue_id in candidates:
        if constraints.fits(total, capacity) and constraints.fits(per_queue[queue_id], limits.get(queue_id)):
            continue
        try:
            with transaction.atomic():
                done = _redistribute(item_id, user, reason)
        except (errors.WorkstreamError, DatabaseError):
            log.warning("over-capacity redistribution: work item %s left as it was", item_id, exc_info=True)
            continue
        if done is not None:
            released.append(item_id)
            total -= 1
            per_queue[queue_id] -= 1
    return released


def work_items_redistribute_queue_over_capacity(*, queue: Queue) -> list[int]:
    """After a queue's `capacity_per_user` was lowered: each person whose load in it (held plus
    reserved, constraints.LOAD_PARTS) is above that gets their excess redistributed
    (work_items_redistribute_over_capacity)."""
    if queue.capacity_per_user is None:
        return []
    loads: Counter[int] = Counter()
    for column, states in constraints.LOAD_PARTS:
        rows = (
            WorkItem.objects.filter(states, queue=queue, **{f"{column}__isnull": False})
            .values_list(column)
            .annotate(n=Count("id"))
        )
        loads.update(dict(rows))
    over = [uid for uid, n in loads.items() if not constraints.fits(n, queue.capacity_per_user)]
    users = get_user_model().objects.filter(pk__in=over).order_by("pk")
    return [i for user in users for i in work_items_redistribute_over_capacity(user=user, reason="capacity lowered")]
