"""Who may hold an item: the constraints every assignment path checks.

Each check raises ConstraintViolated naming itself; `check_can_hold` runs them
in a fixed order (active, candidate, not excluded, separation of duties,
capacity). They read the database but never write it.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q

from workitems.errors import ConstraintViolated
from workitems.models import HELD_STATES, WorkItem

# Audit actions by which a user "acts" on an item, for separation of duties.
SOD_ACTIONS = ("claim", "start", "complete", "fail")


def check_active(user, item: WorkItem) -> None:
    if not user.is_active:
        raise ConstraintViolated(f"user {user.username} is not active", constraint="active")


def is_candidate(user, item: WorkItem) -> bool:
    """The item's own candidates when it names any, else the members of the queue's groups."""
    from workitems.selectors import group_ids_of

    gids = set(group_ids_of(user))
    item_users = set(item.candidate_users.values_list("id", flat=True)) if item.pk else set()
    item_groups = set(item.candidate_groups.values_list("id", flat=True)) if item.pk else set()
    if item_users or item_groups:
        return user.pk in item_users or bool(gids & item_groups)
    queue_groups = set(item.queue.candidate_groups.values_list("id", flat=True))
    return bool(gids & queue_groups)


def check_candidate(user, item: WorkItem) -> None:
    if not is_candidate(user, item):
        raise ConstraintViolated(
            f"user {user.username} is not a candidate for work item {item.pk}", constraint="candidate"
        )


def check_not_excluded(user, item: WorkItem) -> None:
    if item.pk and item.excluded_users.filter(pk=user.pk).exists():
        raise ConstraintViolated(f"user {user.username} is excluded from work item {item.pk}", constraint="excluded")


def check_separation_of_duties(user, item: WorkItem) -> None:
    """Nobody acts on two items of one workflow run that share an SoD key."""
    if not item.sod_key:
        return
    from audit.models import AuditRecord

    siblings = WorkItem.objects.filter(workflow_id=item.workflow_id, run_id=item.run_id, sod_key=item.sod_key)
    if item.pk:
        siblings = siblings.exclude(pk=item.pk)
    held = siblings.filter(assignee_id=user.pk).exists()
    acted = (
        held
        or AuditRecord.objects.filter(
            work_item__in=siblings.values("pk"), actor_id=user.pk, action__in=SOD_ACTIONS
        ).exists()
    )
    if acted:
        raise ConstraintViolated(
            f"separation of duties: {user.username} already acted on another item of workflow run "
            f"{item.workflow_id}/{item.run_id} with SoD key {item.sod_key!r}",
            constraint="separation_of_duties",
        )


def check_capacity(user, item: WorkItem) -> None:
    """The user holds fewer open items in this queue than the queue allows.

    Locks the user's row first so that concurrent assignments to one user are
    counted one after another (two claims cannot both see "2 of 3" and make 4).
    Lock order is always item, then user.
    """
    limit = item.queue.capacity_per_user
    if limit is None:
        return
    list(get_user_model().objects.select_for_update().filter(pk=user.pk).values_list("pk"))
    held = (
        WorkItem.objects.filter(assignee_id=user.pk, queue_id=item.queue_id, state__in=HELD_STATES)
        .exclude(Q(pk=item.pk) if item.pk else Q())
        .count()
    )
    if held >= limit:
        raise ConstraintViolated(
            f"user {user.username} already holds {held} open items in queue {item.queue.name} (capacity {limit})",
            constraint="capacity",
        )


def check_can_hold(user, item: WorkItem, *, require_candidate: bool) -> None:
    """All constraints for `user` holding `item`, in the documented order."""
    check_active(user, item)
    if require_candidate:
        check_candidate(user, item)
    check_not_excluded(user, item)
    check_separation_of_duties(user, item)
    check_capacity(user, item)
