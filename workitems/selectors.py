"""Reads of work items, with visibility built in: what an actor may not see does not exist for it."""

from __future__ import annotations

from django.db import connection
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from workitems import policy
from workitems.errors import NotFound
from workitems.models import Queue, WorkItem

# The order in which items are handed out: most urgent first (claim-next, the inbox).
CLAIM_ORDER = (F("priority").desc(), F("due_at").asc(nulls_last=True), "created_at", "id")


def visibility_filter(actor) -> Q | None:
    """None when `actor` sees every item (policy.sees_everything); otherwise the items of
    its queues, the items it is a candidate for, and its own."""
    if policy.sees_everything(actor):
        return None
    gids = policy.group_ids_of(actor)
    candidate_user = Exists(
        WorkItem.candidate_users.through.objects.filter(workitem_id=OuterRef("pk"), user_id=actor.pk)
    )
    candidate_group = Exists(
        WorkItem.candidate_groups.through.objects.filter(workitem_id=OuterRef("pk"), group_id__in=gids)
    )
    return Q(assignee_id=actor.pk) | policy.queue_member_filter(actor) | candidate_user | candidate_group


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


# claim-next's candidate walk: for each of the caller's queues, the first rows of the
# partial index wi_claim_next_idx (queue, priority desc, due_at, created_at) that the
# caller may take, merged; plus OFFERED items that name the caller outside those queues.
# Nothing is locked here: the caller locks the chosen ids one by one with SKIP LOCKED.
_CLAIM_NEXT_SQL = f"""
SELECT id FROM (
  SELECT c.id, c.priority, c.due_at, c.created_at
  FROM unnest(%(qids)s::bigint[]) AS q(id)
  CROSS JOIN LATERAL (
    SELECT w.id, w.priority, w.due_at, w.created_at
    FROM workitems_workitem w
    WHERE w.queue_id = q.id AND {policy.CANDIDATE_SQL_IN_MEMBER_QUEUE}
      AND (w.follow_up_at IS NULL OR w.follow_up_at <= %(now)s)
      AND NOT (w.id = ANY(%(skip)s::bigint[]))
    ORDER BY w.priority DESC, w.due_at ASC NULLS LAST, w.created_at ASC
    LIMIT %(k)s
  ) c
  UNION
  SELECT w.id, w.priority, w.due_at, w.created_at
  FROM workitems_workitem w JOIN workitems_queue qq ON qq.id = w.queue_id AND qq.active
  WHERE {policy.CANDIDATE_SQL_NAMED}
    AND (%(only_queue)s::bigint IS NULL OR w.queue_id = %(only_queue)s::bigint)
    AND (w.follow_up_at IS NULL OR w.follow_up_at <= %(now)s)
    AND NOT (w.id = ANY(%(skip)s::bigint[]))
) best
ORDER BY priority DESC, due_at ASC NULLS LAST, created_at ASC, id ASC
LIMIT %(k)s
"""


def claim_next_candidate_ids(
    *, actor, queue_ids: list[int], only_queue: int | None, k: int, skip: list[int] | None = None
) -> list[int]:
    """Up to `k` ids of OFFERED items `actor` may claim, best first (priority desc, due_at asc,
    created_at asc), leaving out `skip` (rows already tried), walking the claim-next index per
    queue so the cost does not grow with the number of open items."""
    params = {
        "uid": actor.pk,
        "gids": policy.group_ids_of(actor),
        "qids": queue_ids,
        "only_queue": only_queue,
        "k": k,
        "now": timezone.now(),  # the application's clock, like every other time check
        "skip": list(skip or []),
    }
    if connection.vendor != "postgresql":  # the embedded SQLite default: the ORM's portable query
        qs = WorkItem.objects.filter(policy.claimable_filter(actor), queue__active=True).filter(
            Q(follow_up_at__isnull=True) | Q(follow_up_at__lte=timezone.now())
        )
        if only_queue is not None:
            qs = qs.filter(queue_id=only_queue)
        qs = qs.exclude(pk__in=list(skip or []))
        return list(qs.order_by(*CLAIM_ORDER).values_list("id", flat=True)[:k])
    with connection.cursor() as cur:
        cur.execute(_CLAIM_NEXT_SQL, params)
        return [row[0] for row in cur.fetchall()]


def member_queue_ids(actor, *, only_queue: int | None = None) -> list[int]:
    """Active queues whose items `actor` may take as a member (its groups, valid roles)."""
    qs = Queue.objects.filter(active=True).filter(
        Q(candidate_groups__in=policy.group_ids_of(actor)) | Q(pk__in=policy.role_queue_ids(actor))
    )
    if only_queue is not None:
        qs = qs.filter(pk=only_queue)
    return sorted(set(qs.values_list("id", flat=True)))
