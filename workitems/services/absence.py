"""Absence and reservations: items follow people. When a user leaves (out of office,
deactivated) their held items move on; when they return, the untouched ones come back;
a reservation nobody accepts in time moves to the next candidate."""

from __future__ import annotations

import logging
from functools import partial

from django.db import DatabaseError, transaction
from django.utils import timezone

from config.retry import TransientConflict, retry_transient
from directory.models import Profile
from workitems.errors import ConstraintViolated, WorkstreamError
from workitems.models import State, WorkItem
from workitems.services._core import execute, lock_for_system, push

log = logging.getLogger(__name__)


@transaction.atomic
def work_item_expire_reservation(*, item_id: int) -> WorkItem | None:
    """The reservation lapsed (the timeout job): treat it as a decline by the reservee."""
    item = lock_for_system(item_id)
    if item.reserved_for_id is None or item.reserved_until is None or item.reserved_until > timezone.now():
        return None  # accepted, rejected or renewed meanwhile
    lapsed = item.reserved_for.username
    item = execute(
        action="reject",
        item_id=item_id,
        actor=None,
        expected_version=None,
        audit_data={"reason": "reservation timed out", "reservee": lapsed},
        locked_item=item,
    )
    return push(item, exclude_ids=item.declined_by)


@transaction.atomic
def work_item_hand_over_for_absence(*, item_id: int, user, reason: str = "out of office") -> WorkItem:
    """An item held by `user`, who is now absent or deactivated, moves on: to their delegate
    when the delegate may hold it, else back through distribution; an IN_PROGRESS item nobody
    may take over is suspended. What moved for an absence (not a deactivation) comes back on
    return if nothing happened to it since."""
    item = lock_for_system(item_id)
    if item.assignee_id != user.pk or item.state not in (State.ASSIGNED, State.IN_PROGRESS):
        return item
    # A deactivated user is not coming back: nothing returns to them.
    owner = user if user.is_active else None
    profile = Profile.objects.filter(user_id=user.pk).select_related("delegate").first()
    delegate = profile.delegate if profile is not None else None
    if delegate is not None and delegate.is_active:
        data = {"assignee": delegate.username, "reason": reason}
        if owner is not None:
            data["return_to"] = owner.username
        try:
            with transaction.atomic():
                return execute(
                    action="delegate",
                    item_id=item_id,
                    actor=None,
                    expected_version=None,
                    target_user=delegate,
                    transition_kwargs={"user": delegate, "return_to": owner},
                    audit_data=data,
                    locked_item=item,
                )
        except ConstraintViolated:
            item = lock_for_system(item_id)
    if item.state == State.IN_PROGRESS:
        # The lifecycle has no way from IN_PROGRESS back to the queue, and nobody may take
        # it over: it is suspended (still showing its owner) until they return or a
        # supervisor decides.
        data = {"reason": f"{reason}; no delegate could take it"}
        if owner is not None:
            data["return_to"] = owner.username
        return execute(
            action="suspend",
            item_id=item_id,
            actor=None,
            expected_version=None,
            args={"reason": reason},
            transition_kwargs={"return_to": owner},
            audit_data=data,
            locked_item=item,
        )
    item = execute(
        action="release",
        item_id=item_id,
        actor=None,
        expected_version=None,
        audit_data={"reason": reason},
        locked_item=item,
    )
    return push(item, exclude_ids=[user.pk])


@transaction.atomic
def work_item_return_to_owner(*, item_id: int) -> WorkItem | None:
    """Give an item moved away during an absence back to its owner, if nothing happened to it
    since: a delegated item is delegated back, an item suspended for the absence resumes."""
    item = lock_for_system(item_id)
    owner = item.return_to
    if owner is None or item.version != item.return_version:
        return None
    if item.state == State.SUSPENDED and item.assignee_id == owner.pk:
        return execute(
            action="resume",
            item_id=item_id,
            actor=None,
            expected_version=None,
            audit_data={"reason": "owner returned"},
            locked_item=item,
        )
    if item.state != State.ASSIGNED:
        return None
    return execute(
        action="delegate",
        item_id=item_id,
        actor=None,
        expected_version=None,
        target_user=owner,
        transition_kwargs={"user": owner},
        audit_data={"assignee": owner.username, "reason": "owner returned"},
        locked_item=item,
    )


def _atomically(step, item_id: int):
    with transaction.atomic():
        return step(item_id)


def _each_in_savepoint(ids: list[int], step, what: str) -> int:
    """Run `step(item_id)` for each id in its own savepoint: one item that fails (a race, a
    constraint, a bad row) is logged and left as it was, and does not undo the others. Run
    outside a transaction (the Celery jobs), each is its own transaction, retried on a
    deadlock, serialization failure or lock timeout (config.retry)."""
    done = 0
    for item_id in ids:
        try:
            done += int(bool(retry_transient(partial(_atomically, step, item_id), where="task")))
        except (WorkstreamError, DatabaseError, TransientConflict):
            log.warning("%s: work item %s left as it was", what, item_id, exc_info=True)
    return done


def work_items_hand_over(*, user, reason: str = "out of office") -> int:
    """Move every item `user` holds (ASSIGNED, IN_PROGRESS) on (work_item_hand_over_for_absence);
    returns how many went to someone else (suspended ones stay theirs)."""
    ids = list(
        WorkItem.objects.filter(assignee_id=user.pk, state__in=(State.ASSIGNED, State.IN_PROGRESS))
        .order_by("id")
        .values_list("id", flat=True)
    )

    def step(item_id: int) -> bool:
        return work_item_hand_over_for_absence(item_id=item_id, user=user, reason=reason).assignee_id != user.pk

    return _each_in_savepoint(ids, step, "absence hand-over")


def work_items_return_to(*, user) -> int:
    """Give back to `user` the items moved away during their absence that nobody touched since."""
    ids = list(WorkItem.objects.filter(return_to_id=user.pk).order_by("id").values_list("id", flat=True))
    return _each_in_savepoint(
        ids, lambda item_id: work_item_return_to_owner(item_id=item_id) is not None, "return to owner"
    )


def work_items_expire_reservations(*, limit: int = 1000) -> int:
    """The reservation timeout job: lapsed reservations move to the next candidate."""
    ids = list(
        WorkItem.objects.filter(state=State.OFFERED, reserved_until__lte=timezone.now())
        .order_by("reserved_until")
        .values_list("id", flat=True)[:limit]
    )
    return _each_in_savepoint(
        ids, lambda item_id: work_item_expire_reservation(item_id=item_id) is not None, "reservation expiry"
    )
