"""Reads of work items, with visibility built in: what an actor may not see does not exist for it."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

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
    qs = WorkItem.objects.select_related("queue__lifecycle", "assignee", "created_by", "reserved_for")
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


# claim-next's candidate walk: for each of the caller's queues, the first rows of the
# partial index wi_claim_next_idx (queue, priority desc, due_at, created_at) that the
# caller may take, merged; plus OFFERED items that name the caller outside those queues.
# Nothing is locked here: the caller locks the chosen ids one by one with SKIP LOCKED.
_CLAIM_FILTERS = """
      AND (w.follow_up_at IS NULL OR w.follow_up_at <= %(now)s)
      AND (w.reserved_for_id IS NULL OR w.reserved_for_id = %(uid)s)
      AND NOT (w.id = ANY(%(skip)s::bigint[]))
      AND NOT EXISTS (SELECT 1 FROM workitems_workitem_excluded_users e
                      WHERE e.workitem_id = w.id AND e.user_id = %(uid)s)
"""
_CLAIM_NEXT_SQL = (
    """
SELECT id FROM (
  SELECT c.id, c.priority, c.due_at, c.created_at
  FROM unnest(%(qids)s::bigint[]) AS q(id)
  CROSS JOIN LATERAL (
    SELECT w.id, w.priority, w.due_at, w.created_at
    FROM workitems_workitem w
    WHERE w.queue_id = q.id AND w.state = 'OFFERED'
"""
    + _CLAIM_FILTERS
    + """
      AND (
        (NOT EXISTS (SELECT 1 FROM workitems_workitem_candidate_users cu WHERE cu.workitem_id = w.id)
         AND NOT EXISTS (SELECT 1 FROM workitems_workitem_candidate_groups cg WHERE cg.workitem_id = w.id))
        OR EXISTS (SELECT 1 FROM workitems_workitem_candidate_users cu
                   WHERE cu.workitem_id = w.id AND cu.user_id = %(uid)s)
        OR EXISTS (SELECT 1 FROM workitems_workitem_candidate_groups cg
                   WHERE cg.workitem_id = w.id AND cg.group_id = ANY(%(gids)s::bigint[]))
      )
    ORDER BY w.priority DESC, w.due_at ASC NULLS LAST, w.created_at ASC
    LIMIT %(k)s
  ) c
  UNION
  SELECT w.id, w.priority, w.due_at, w.created_at
  FROM workitems_workitem w JOIN workitems_queue qq ON qq.id = w.queue_id AND qq.active
  WHERE w.state = 'OFFERED'
    AND (%(only_queue)s::bigint IS NULL OR w.queue_id = %(only_queue)s::bigint)
    AND w.id IN (SELECT workitem_id FROM workitems_workitem_candidate_users WHERE user_id = %(uid)s
                 UNION SELECT workitem_id FROM workitems_workitem_candidate_groups
                       WHERE group_id = ANY(%(gids)s::bigint[]))
"""
    + _CLAIM_FILTERS
    + """
) best
ORDER BY priority DESC, due_at ASC NULLS LAST, created_at ASC, id ASC
LIMIT %(k)s
"""
)


def claim_next_candidate_ids(
    *, actor, queue_ids: list[int], only_queue: int | None, k: int, skip: list[int] | None = None
) -> list[int]:
    """Up to `k` ids of OFFERED items `actor` may claim, best first (priority desc, due_at asc,
    created_at asc), leaving out `skip` (rows already tried), walking the claim-next index per
    queue so the cost does not grow with the number of open items."""
    from django.db import connection

    params = {
        "uid": actor.pk,
        "gids": group_ids_of(actor),
        "qids": queue_ids,
        "only_queue": only_queue,
        "k": k,
        "now": timezone.now(),  # the application's clock, like every other time check
        "skip": list(skip or []),
    }
    if connection.vendor != "postgresql":  # the embedded SQLite default: the ORM's portable query
        qs = WorkItem.objects.filter(claimable_filter(actor), queue__active=True).filter(
            Q(follow_up_at__isnull=True) | Q(follow_up_at__lte=timezone.now())
        )
        if only_queue is not None:
            qs = qs.filter(queue_id=only_queue)
        qs = qs.exclude(pk__in=list(skip or []))
        order = (F("priority").desc(), F("due_at").asc(nulls_last=True), "created_at", "id")
        return list(qs.order_by(*order).values_list("id", flat=True)[:k])
    with connection.cursor() as cur:
        cur.execute(_CLAIM_NEXT_SQL, params)
        return [row[0] for row in cur.fetchall()]


def member_queue_ids(actor, *, only_queue: int | None = None) -> list[int]:
    """Active queues whose items `actor` may take as a member (its groups, valid roles)."""
    qs = Queue.objects.filter(active=True).filter(
        Q(candidate_groups__in=group_ids_of(actor)) | Q(pk__in=role_queue_ids(actor))
    )
    if only_queue is not None:
        qs = qs.filter(pk=only_queue)
    return sorted(set(qs.values_list("id", flat=True)))
