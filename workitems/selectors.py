"""Reads of work items, with visibility built in: what an actor may not see does not exist for it."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import Exists, OuterRef, Q, QuerySet

from directory.roles import ADMIN, SERVICE, SUPERVISOR, roles_of, user_groups
from workitems.errors import NotFound
from workitems.models import Queue, WorkItem

_SEES_ALL = {ADMIN, SUPERVISOR, SERVICE}


def group_ids_of(user) -> list[int]:
    return [gid for gid, _ in user_groups(user)]


def visibility_filter(actor) -> Q | None:
    """None when `actor` sees every item (system, admins, supervisors, service clients);
    otherwise the items of its queues, the items it is a candidate for, and its own."""
    if actor is None or roles_of(actor) & _SEES_ALL:
        return None
    gids = group_ids_of(actor)
    queue_member = Exists(
        Queue.candidate_groups.through.objects.filter(queue_id=OuterRef("queue_id"), group_id__in=gids)
    ) | Exists(role_queue_ids(actor).filter(queue_id=OuterRef("queue_id")))
    candidate_user = Exists(
        WorkItem.candidate_users.through.objects.filter(workitem_id=OuterRef("pk"), user_id=actor.pk)
    )
    candidate_group = Exists(
        WorkItem.candidate_groups.through.objects.filter(workitem_id=OuterRef("pk"), group_id__in=gids)
    )
    return Q(assignee_id=actor.pk) | queue_member | candidate_user | candidate_group


def claimable_filter(actor) -> Q:
    """OFFERED items `actor` is a candidate for: named on the item (user or group), or, when
    the item names nobody, a member of one of its queue's groups; and not excluded."""
    gids = group_ids_of(actor)
    item_users = WorkItem.candidate_users.through.objects.filter(workitem_id=OuterRef("pk"))
    item_groups = WorkItem.candidate_groups.through.objects.filter(workitem_id=OuterRef("pk"))
    queue_groups = Queue.candidate_groups.through.objects.filter(queue_id=OuterRef("queue_id"), group_id__in=gids)
    queue_roles = role_queue_ids(actor).filter(queue_id=OuterRef("queue_id"))
    named = Exists(item_users.filter(user_id=actor.pk)) | Exists(item_groups.filter(group_id__in=gids))
    unnamed = ~Exists(item_users) & ~Exists(item_groups) & (Exists(queue_groups) | Exists(queue_roles))
    excluded = Exists(WorkItem.excluded_users.through.objects.filter(workitem_id=OuterRef("pk"), user_id=actor.pk))
    not_reserved_for_others = Q(reserved_for__isnull=True) | Q(reserved_for=actor.pk)
    return Q(state="OFFERED") & not_reserved_for_others & (named | unnamed) & ~excluded


def role_queue_ids(actor, at=None):
    """(queue_id) rows of the queues `actor` holds through role assignments valid at `at` (now)."""
    from directory.models import Role, RoleAssignment

    valid_roles = RoleAssignment.objects.valid_at(at).filter(user_id=actor.pk).values("role_id")
    return Role.queues.through.objects.filter(role_id__in=valid_roles).values("queue_id")


def work_item_list_for(*, actor) -> QuerySet[WorkItem]:
    """All items `actor` may see (filters are applied on top by the caller)."""
    qs = WorkItem.objects.select_related("queue", "assignee")
    if actor is not None and not actor.is_authenticated:
        return qs.none()
    q = visibility_filter(actor)
    return qs if q is None else qs.filter(q)


def work_item_get_for(*, actor, item_id: int, for_update: bool = False) -> WorkItem:
    """One item `actor` may see, optionally row-locked; NotFound otherwise."""
    qs = WorkItem.objects.select_related("queue__lifecycle", "assignee", "created_by")
    if for_update:
        # `of` keeps the lock on the item row: the joined rows are only read.
        qs = qs.select_for_update(of=("self",))
    try:
        item = qs.get(pk=item_id)
    except (WorkItem.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"work item {item_id} not found") from None
    if not work_item_visible_to(actor=actor, item=item):
        raise NotFound(f"work item {item_id} not found")
    return item


def work_item_visible_to(*, actor, item: WorkItem) -> bool:
    q = visibility_filter(actor)
    if q is None:
        return True
    if not actor.is_authenticated:
        return False
    if item.assignee_id == actor.pk:
        return True
    return WorkItem.objects.filter(q, pk=item.pk).exists()


def group_names_of_queue(queue: Queue) -> list[str]:
    return list(queue.candidate_groups.values_list("name", flat=True))


def groups_by_name(names: list[str]) -> dict[str, Group]:
    return {g.name: g for g in Group.objects.filter(name__in=names)}
