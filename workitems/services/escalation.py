"""Escalation: raise an item's escalation level and re-route what nobody holds; the SLA scan
that applies each queue's escalation policy through the same commands."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from config import wsconfig
from config.timefmt import isoformat_z
from workitems import sla
from workitems.errors import FeatureDisabled
from workitems.models import OPEN_STATES, Queue, SlaState, State, WorkItem
from workitems.services._core import Command, execute, lock_for_system, push


@transaction.atomic
def work_item_escalate(*, item_id: int, actor=None, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """Raise the escalation level; an item nobody holds moves to the queue's escalation queue."""
    if not wsconfig.get().features.escalation:
        raise FeatureDisabled("escalation is switched off", toggle="features.escalation")
    audit_data: dict[str, Any] = {"reason": reason} if reason else {}
    transition_kwargs: dict[str, Any] = {}

    def reroute(cmd: Command) -> None:
        queue = cmd.item.queue
        if queue.escalation_queue_id and cmd.item.state in (State.CREATED, State.OFFERED):
            target = Queue.objects.get(pk=queue.escalation_queue_id)
            transition_kwargs["queue"] = target
            audit_data.update(from_queue=queue.name, to_queue=target.name)

    return execute(
        action="escalate",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        transition_kwargs=transition_kwargs,
        audit_data=audit_data,
        prepare=reroute,
    )


# --- the SLA scan -----------------------------------------------------------------------------


def _fire_level(item: WorkItem, index: int, level: dict[str, Any], now) -> WorkItem:
    """One escalation-policy level, as one audited `escalate` change (plus a release and a
    re-distribution when the level moves the item on)."""
    actions = level["actions"]
    # A level that only tells people (the default's at-risk notice) does not raise the level.
    raises = level["at"] >= 1.0 or any(a["type"] != "notify" for a in actions)
    kwargs: dict[str, Any] = {"sla_level": index + 1, "raise_level": raises}
    data: dict[str, Any] = {"sla_level": index + 1, "at": level["at"], "actions": [a["type"] for a in actions]}
    release = False
    for action in actions:
        kind = action["type"]
        if kind == "raise_priority":
            kwargs["priority"] = min(100, (kwargs.get("priority") or item.priority) + action["by"])
            data["priority"] = [item.priority, kwargs["priority"]]
        elif kind == "notify":
            data.setdefault("notify", []).extend(action.get("to", ["assignee"]))
        elif kind in ("reassign", "escalate_queue"):
            target = (
                Queue.objects.filter(name=action["queue"]).first()
                if kind == "reassign"
                else (Queue.objects.filter(pk=item.queue.escalation_queue_id).first())
            )
            held = item.state in (State.ASSIGNED, State.IN_PROGRESS)
            if target is not None and target.pk != item.queue_id and (kind == "reassign" or not held):
                kwargs["queue"] = target
                data.update(from_queue=item.queue.name, to_queue=target.name)
                release = release or item.state == State.ASSIGNED
        elif kind == "release":
            release = release or item.state == State.ASSIGNED
    if release and item.lifecycle.allow_release:
        item = execute(
            action="release",
            item_id=item.pk,
            actor=None,
            expected_version=None,
            audit_data={"reason": f"SLA escalation level {index + 1}"},
            locked_item=item,
        )
    item = execute(
        action="escalate",
        item_id=item.pk,
        actor=None,
        expected_version=None,
        transition_kwargs=kwargs,
        audit_data=data,
        locked_item=item,
    )
    return push(item) if release else item


@transaction.atomic
def work_item_sla_advance(*, item_id: int, now=None) -> WorkItem | None:
    """What the SLA clock says is due for one item, applied once: at risk, breached, and each
    escalation-policy level past due that has not fired (when `features.escalation` is on).
    The row lock and the counters on the row (`sla_state`, `sla_level`) make every step
    happen exactly once however many scanners race. None when nothing was due."""
    return _advance(lock_for_system(item_id), now or timezone.now())


def _advance(item: WorkItem, now) -> WorkItem | None:
    """work_item_sla_advance on an item already locked."""
    if item.sla_next_at is None or item.sla_next_at > now or item.state not in OPEN_STATES:
        return None
    state = sla.state_at(item, now)
    if state in (SlaState.AT_RISK, SlaState.BREACHED) and item.sla_state in (SlaState.NONE, SlaState.ON_TRACK):
        item = execute(action="sla_at_risk", item_id=item.pk, actor=None, expected_version=None, locked_item=item)
    if state == SlaState.BREACHED and item.sla_state != SlaState.BREACHED:
        item = execute(
            action="sla_breach",
            item_id=item.pk,
            actor=None,
            expected_version=None,
            transition_kwargs={"at": item.due_at},
            audit_data={"due_at": isoformat_z(item.due_at)},
            locked_item=item,
        )
    if wsconfig.get().features.escalation:
        for index, level in sla.due_levels(item, now):
            if item.state not in OPEN_STATES or item.state == State.SUSPENDED:
                break
            item = _fire_level(item, index, level, now)
    if item.sla_next_at is not None and item.sla_next_at <= now:
        # Nothing changed the item although it came due (escalation switched off meanwhile):
        # look again when the rules say (sla.next_moment leaves the levels out then).
        item.sla_next_at = sla.next_moment(item)
        WorkItem.objects.filter(pk=item.pk).update(sla_next_at=item.sla_next_at)
    return item


def _revisit_held(batch: int) -> int:
    """After `features.escalation` was off during a scan, look again at the open items of
    the queues it saw then: their next SLA moment left the policy levels out (sla.next_moment),
    so a breached item would never come due again. Its `sla_next_at` is brought forward to
    what the rules say now; the scan then fires the levels that are due. Each queue is walked
    once by id, in batches; returns how many items were brought forward.

    Only items whose next moment can have lost a level are read: at risk and breached ones,
    and on-track ones only when the policy has a level before the at-risk share (otherwise
    their next moment, the at-risk one, comes no later than any level)."""
    moved = 0
    for queue in Queue.objects.filter(escalation_held_since__isnull=False):
        early = any(level["at"] < queue.at_risk_ratio for level in sla.policy_of(queue))
        states = [SlaState.AT_RISK, SlaState.BREACHED] + ([SlaState.ON_TRACK] if early else [])
        last = 0
        while True:
            items = list(
                WorkItem.objects.select_related("queue__calendar")
                .filter(queue_id=queue.pk, state__in=OPEN_STATES, sla_state__in=states, id__gt=last)
                .exclude(state=State.SUSPENDED)
                .order_by("id")[:batch]
            )
            for item in items:
                moment = sla.next_moment(item)
                if moment is not None and (item.sla_next_at is None or moment < item.sla_next_at):
                    # Only if nothing changed it meanwhile (a change computes its own next moment).
                    moved += WorkItem.objects.filter(
                        pk=item.pk, version=item.version, sla_next_at=item.sla_next_at
                    ).update(sla_next_at=moment)
            if len(items) < batch:
                break
            last = items[-1].pk
        Queue.objects.filter(pk=queue.pk, escalation_held_since=queue.escalation_held_since).update(
            escalation_held_since=None
        )
    return moved


def sla_scan(*, now=None, batch: int = 500, max_batches: int = 100) -> int:
    """Apply what is due to every item whose `sla_next_at` has come, walking the partial index
    `wi_sla_next_idx` in batches; each item in its own transaction. Rows another scanner holds
    are skipped (SKIP LOCKED) and taken by it. Returns how many items changed.

    A scan with `features.escalation` off marks the queues (`escalation_held_since`); the
    first scan with it on again revisits their items (_revisit_held) before its own walk."""
    now = now or timezone.now()
    changed = 0
    if not wsconfig.get().features.escalation:
        Queue.objects.filter(escalation_held_since__isnull=True).update(escalation_held_since=now)
    else:
        _revisit_held(batch)
    for _ in range(max_batches):
        ids = list(
            WorkItem.objects.filter(sla_next_at__lte=now, state__in=OPEN_STATES)
            .order_by("sla_next_at")
            .values_list("id", flat=True)[:batch]
        )
        if not ids:
            break
        for item_id in ids:
            with transaction.atomic():
                # One statement claims and reads the row; a row another scanner holds is skipped.
                item = (
                    WorkItem.objects.select_related(
                        "queue__lifecycle", "task_type", "assignee", "created_by", "reserved_for"
                    )
                    .select_for_update(skip_locked=True, of=("self",))
                    .filter(pk=item_id, sla_next_at__lte=now)
                    .first()
                )
                if item is None:
                    continue  # another scanner has it, or it is done
                changed += int(_advance(item, now) is not None)
        if len(ids) < batch:
            break
    return changed
