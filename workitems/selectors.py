"""Reads of work items, with visibility built in: what an actor may not see does not exist for it."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace

from django.contrib.auth import get_user_model
from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import (
    BooleanField,
    CharField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Concat, JSONObject
from django.utils import timezone

from audit.models import AuditHead
from config import sqlcache
from distribution.constraints import Locked, has_profile, id_set, load_filter, lock_user
from distribution.strategies import Candidate
from workitems import policy
from workitems.errors import NotFound
from workitems.models import Queue, State, WorkItem

# The order in which items are handed out: most urgent first (claim-next, the inbox).
CLAIM_ORDER = (F("priority").desc(), F("due_at").asc(nulls_last=True), "created_at", "id")


def work_item_list_for(*, actor) -> QuerySet[WorkItem]:
    """All items `actor` may see (filters are applied on top by the caller)."""
    qs = WorkItem.objects.select_related("queue", "assignee", "department", "task_type")
    if actor is not None and not actor.is_authenticated:
        return qs.none()
    q = policy.visible_filter(actor)
    return qs if q is None else qs.filter(q)


def _head(column: str) -> Subquery:
    """The item's audit chain head (`workitem:<id>`), read in the statement that locks the row."""
    stream = Concat(Value("workitem:"), Cast(OuterRef("pk"), CharField()))
    return Subquery(AuditHead.objects.filter(stream=stream).values(column)[:1])


# The item's lists as names, read with the row (the API's representation shows them).
_LISTS = {
    "candidate_users": (WorkItem.candidate_users.through, "user__username"),
    "candidate_groups": (WorkItem.candidate_groups.through, "group__name"),
    "excluded_users": (WorkItem.excluded_users.through, "user__username"),
}


def _list_columns() -> dict:
    if connection.vendor != "postgresql":
        return {}
    return {
        f"_list_{name}": ArraySubquery(through.objects.filter(workitem_id=OuterRef("pk")).values(column))
        for name, (through, column) in _LISTS.items()
    }


def with_lists(qs: QuerySet[WorkItem]) -> QuerySet[WorkItem]:
    """`qs` with each item's candidate and excluded lists: as names read in the same statement on
    PostgreSQL (three array columns, evaluated only for the rows a LIMIT keeps), for
    `keep_lists` to move to `item.list_names`; prefetched elsewhere (three statements)."""
    columns = _list_columns()
    if columns:
        return qs.annotate(**columns)
    return qs.prefetch_related(*_LISTS)


def keep_lists(item: WorkItem) -> None:
    """Move the lists read with the row to `item.list_names` ({list: [names]})."""
    names = {name: item.__dict__.pop(f"_list_{name}") for name in _LISTS if f"_list_{name}" in item.__dict__}
    if names:
        item.list_names = names


def _as_bool(q: Q) -> ExpressionWrapper:
    return ExpressionWrapper(q, output_field=BooleanField())


def _get_for_queryset(actor, item_id, *, for_update: bool, claimer, visibility: Q | None) -> QuerySet[WorkItem]:
    """work_item_get_for's statement (see there)."""
    qs = WorkItem.objects.select_related(
        "queue__lifecycle", "task_type", "assignee", "created_by", "reserved_for", "department"
    )
    extra = _list_columns()
    if visibility is not None:
        extra["_visible"] = _as_bool(visibility)
    if for_update:
        # `of` keeps the lock on the item row: the joined rows are only read.
        qs = qs.select_for_update(of=("self",))
        extra["_head_seq"], extra["_head_hash"] = _head("seq"), _head("hash")
    if claimer is not None:
        extra["claimable"] = _as_bool(policy.claimable_filter(claimer))
    return qs.annotate(**extra).filter(pk=item_id)


def stand_in_user(stand: sqlcache.Stand, n_groups: int):
    """A user of stand-in id and `n_groups` stand-in groups, no role that sees everything, for
    building a template of a query the policy's filters shape (config.sqlcache)."""
    user = get_user_model()(pk=stand.value("uid"), is_active=True)
    user._workstream_groups = [(gid, "") for gid in stand.values("g", n_groups)]
    user._workstream_roles = frozenset()
    return user


def user_values(user) -> dict:
    """The values of stand_in_user's slots for `user`."""
    return {"uid": user.pk, **{f"g{i}": gid for i, gid in enumerate(policy.group_ids_of(user))}}


def _get_for_template(actor, *, for_update: bool, claimer, sees_all: bool) -> sqlcache.Template | None:
    """work_item_get_for's statement compiled once per shape (config.sqlcache): whether the
    actor's visibility applies, locked or not, with the claimer's candidacy or not, and the
    number of the actor's groups."""
    if claimer is not None and claimer is not actor:
        return None
    n = len(policy.group_ids_of(actor)) if actor is not None and not (sees_all and claimer is None) else 0
    key = ("work_item_get_for", sees_all, for_update, claimer is not None, n)

    def build(stand: sqlcache.Stand):
        user = stand_in_user(stand, n) if not (sees_all and claimer is None) else None
        return _get_for_queryset(
            user,
            stand.value("item"),
            for_update=for_update,
            claimer=user if claimer is not None else None,
            visibility=None if sees_all else policy.visible_filter(user),
        )

    return sqlcache.template(key, build)


def work_item_get_for(*, actor, item_id: int, for_update: bool = False, claimer=None) -> WorkItem:
    """One item `actor` may see, optionally row-locked; NotFound otherwise.

    One statement: the row (with its queue, lifecycle and users), its candidate and excluded
    lists as names (`item.list_names`), whether `actor` sees it, and, when locked, the head
    of its audit chain (`item.audit_head`: (seq, hash) or None), which the lock orders, so
    the change's audit record needs no read of its own. With
    `claimer`, whether that user may claim it (`item.claimable`, policy.claimable_filter).
    On PostgreSQL its SQL is compiled once per shape (_get_for_template)."""
    if actor is not None and not actor.is_authenticated:
        raise NotFound(f"work item {item_id} not found")
    sees_all = policy.sees_everything(actor)
    template = _get_for_template(actor, for_update=for_update, claimer=claimer, sees_all=sees_all)
    try:
        if template is not None:
            pk = WorkItem._meta.pk.get_prep_value(item_id)
            found = template.fetch({"item": pk, **(user_values(actor) if actor is not None else {})})
            if not found:
                raise WorkItem.DoesNotExist
            item = found[0]
        else:
            visibility = None if sees_all else policy.visible_filter(actor)
            qs = _get_for_queryset(actor, item_id, for_update=for_update, claimer=claimer, visibility=visibility)
            item = qs.get()
    except (WorkItem.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"work item {item_id} not found") from None
    if not sees_all and not item._visible:
        raise NotFound(f"work item {item_id} not found")
    if for_update:
        keep_head(item)
    keep_lists(item)
    return item


def keep_head(item: WorkItem) -> None:
    """Keep the head read with the row (annotations `_head_seq`, `_head_hash`) as `item.audit_head`
    if it is the row's own: every change of an item bumps its version and appends one record, so
    the head's seq is the version. A statement that waited for the lock sees the row as the
    last writer left it but the head as its snapshot had it (READ COMMITTED), one change
    behind: then the head is not kept, and the change reads it fresh (services._core.audit_head)."""
    seq, digest = item.__dict__.pop("_head_seq", None), item.__dict__.pop("_head_hash", None)
    if seq is not None and seq == item.version:
        item.audit_head = (seq, digest)


def work_item_visible_to(*, actor, item: WorkItem) -> bool:
    q = policy.visible_filter(actor)
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
# The score of an item in claim-next over several named queues (see claim_next_lock):
# weight × (priority + minutes waited), so an item gains one point of priority per
# CLAIM_NEXT_AGING_SECONDS it waits and low-priority work in one queue is not starved by a
# stream of urgent work in another. `q` is the item's queue row, `w` the item's.
CLAIM_NEXT_AGING_SECONDS = 60
_SCORE_SQL = (
    "q.weight * (w.priority + EXTRACT(EPOCH FROM (%(now)s::timestamptz - w.created_at)) / "
    f"{CLAIM_NEXT_AGING_SECONDS}.0)"
)


@functools.cache
def _claim_next_sql(scored: bool, k: int) -> str:
    """claim-next's candidate walk: for each of the caller's queues, the first rows of the
    partial index wi_claim_next_idx (queue, priority desc, due_at, created_at) that the
    caller may take, merged; plus OFFERED items that name the caller outside those queues.
    Unscored (no queue named, or one), the best by the index's order; `scored` (several
    queues named), the best by _SCORE_SQL of each queue's first rows. Nothing is locked
    here: the caller locks the chosen ids with SKIP LOCKED.

    `k` is written into the text, not bound: the statement is prepared with one generic plan
    (DB_PLAN_CACHE_MODE), and a generic plan of `LIMIT $n` assumes a tenth of the rows, which
    at a million open items chose to sort them all (2.7 s a call, bench/claim_next.py)."""
    score = _SCORE_SQL if scored else "0"
    k = int(k)
    return f"""
SELECT id FROM (
  SELECT c.id, c.score, c.priority, c.due_at, c.created_at
  FROM workitems_queue q
  CROSS JOIN LATERAL (
    SELECT w.id, {score} AS score, w.priority, w.due_at, w.created_at
    FROM workitems_workitem w
    WHERE w.queue_id = q.id AND {policy.CANDIDATE_SQL_IN_MEMBER_QUEUE}
      AND (w.follow_up_at IS NULL OR w.follow_up_at <= %(now)s)
      AND NOT (w.id = ANY(%(skip)s::bigint[]))
    ORDER BY w.priority DESC, w.due_at ASC NULLS LAST, w.created_at ASC
    LIMIT {k}
  ) c
  WHERE q.id = ANY(%(qids)s::bigint[])
  UNION
  SELECT w.id, {score} AS score, w.priority, w.due_at, w.created_at
  FROM workitems_workitem w JOIN workitems_queue q ON q.id = w.queue_id AND q.active
  WHERE {policy.CANDIDATE_SQL_NAMED}
    AND (%(only)s::bigint[] IS NULL OR w.queue_id = ANY(%(only)s::bigint[]))
    AND (w.follow_up_at IS NULL OR w.follow_up_at <= %(now)s)
    AND NOT (w.id = ANY(%(skip)s::bigint[]))
) best
ORDER BY score DESC, priority DESC, due_at ASC NULLS LAST, created_at ASC, id ASC
LIMIT {k}
"""


def _positional(sql: str, params: dict) -> tuple[str, list]:
    """A `%(name)s` query as a `%s` one, to embed in an ORM statement."""
    names = _NAMED_PARAM.findall(sql)
    return _NAMED_PARAM.sub("%s", sql), [params[n] for n in names]


_NAMED_PARAM = re.compile(r"%\((\w+)\)s")


def _walk_params(actor, queue_ids, only_queues, k, skip) -> dict:
    return {
        "uid": actor.pk,
        "gids": policy.group_ids_of(actor),
        "qids": queue_ids,
        "only": only_queues,
        "k": k,
        "now": timezone.now(),  # the application's clock, like every other time check
        "skip": list(skip or []),
    }


def _score(now) -> RawSQL:
    """_SCORE_SQL over the lock statement's own item row and queue join (select_related)."""
    sql = _SCORE_SQL.replace("q.", '"workitems_queue".').replace("w.", '"workitems_workitem".')
    return RawSQL(*_positional(sql, {"now": now}))  # noqa: S611 - a constant expression, bound parameters


def _claim_next_queryset(walk, *, scored: bool = False, now=None) -> QuerySet[WorkItem]:
    qs = WorkItem.objects.select_related(
        "queue__lifecycle", "task_type", "assignee", "created_by", "reserved_for", "department"
    )
    qs = qs.select_for_update(skip_locked=True, of=("self",)).annotate(
        _head_seq=_head("seq"), _head_hash=_head("hash"), **_list_columns()
    )
    # `id = ANY(ARRAY(walk))`, not `id IN (walk)`: the walk runs first, once (an InitPlan), and
    # its k ids are fetched by the primary key. As a semi-join at the end of the seven joins
    # above (past join_collapse_limit) PostgreSQL hash-joined every OFFERED row first: 2.5 s a
    # call at a million open items (bench/claim_next.py).
    chosen = RawSQL(  # noqa: S611 - the walk's constant SQL, bound parameters
        f'"workitems_workitem"."id" = ANY(ARRAY({walk.sql}))', walk.params, output_field=BooleanField()
    )
    qs = qs.filter(chosen, state=State.OFFERED)
    if scored:
        return qs.annotate(_score=_score(now)).order_by("-_score", *CLAIM_ORDER)[:1]
    return qs.order_by(*CLAIM_ORDER)[:1]


def _claim_next_walk(params: dict, scored: bool) -> RawSQL:
    return RawSQL(*_positional(_claim_next_sql(scored, params["k"]), params))  # noqa: S611 - a constant query, bound parameters


def _claim_next_stand_ins(stand: sqlcache.Stand, k: int) -> dict:
    return {
        "k": k,  # in the text (_claim_next_sql), not a parameter
        "uid": stand.value("uid"),
        "gids": stand.array("gids"),
        "qids": stand.array("qids"),
        "only": stand.array("only"),
        "now": timezone.now(),
        "skip": stand.array("skip"),
    }


def claim_next_lock(
    *, actor, queue_ids: list[int], only_queues: list[int] | None, k: int, skip: list[int], scored: bool = False
) -> WorkItem | None:
    """claim-next's walk and lock in ONE statement: of the best `k` candidates the walk finds
    (claim_next_candidate_ids), the best OFFERED row nobody else holds, locked FOR UPDATE SKIP
    LOCKED, with its audit head (`item.audit_head`); best by the index's order, or, `scored`,
    by the score (_SCORE_SQL). None when all of them are taken or being taken. On PostgreSQL
    its SQL is compiled once per form (config.sqlcache)."""
    if connection.vendor == "postgresql":
        params = _walk_params(actor, queue_ids, only_queues, k, skip)

        def build(stand: sqlcache.Stand):
            return _claim_next_queryset(
                _claim_next_walk(_claim_next_stand_ins(stand, k), scored), scored=scored, now=timezone.now()
            )

        template = sqlcache.template(("claim_next_lock", scored, k), build)
        if template is not None:
            found = template.fetch(params)
            item = found[0] if found else None
        else:
            qs = _claim_next_queryset(_claim_next_walk(params, scored), scored=scored, now=params["now"])
            item = qs.first()
    else:  # the embedded SQLite default: the walk's ids, the best of them by the walk's order
        walk = claim_next_candidate_ids(
            actor=actor, queue_ids=queue_ids, only_queues=only_queues, k=k, skip=skip, scored=scored
        )
        found = {w.pk: w for w in _sqlite_rows(walk)}
        item = next((found[pk] for pk in walk if pk in found), None)
    if item is not None:
        keep_head(item)
        keep_lists(item)
    return item


def _sqlite_rows(ids: list[int]) -> list[WorkItem]:
    qs = WorkItem.objects.select_related("queue__lifecycle", "assignee", "created_by", "reserved_for", "department")
    return list(qs.annotate(_head_seq=_head("seq"), _head_hash=_head("hash")).filter(pk__in=ids, state=State.OFFERED))


@dataclass
class Claimer:
    """A claim-next caller, its row locked: what the constraints need to know about it, its
    member queues (id, lifecycle action_roles, capacity_per_user) and the queue of each item
    it holds or has reserved for it."""

    user: object
    candidate: Candidate
    queues: list[tuple[int, dict | None, int | None]]
    held_queue_ids: list[int]
    named: dict[str, int] = field(default_factory=dict)

    def held_in(self, queue_id: int) -> int:
        return self.held_queue_ids.count(queue_id)

    def locked_for(self, item: WorkItem) -> Locked:
        """The claimer as constraints.check_can_hold sees it for `item` (its load not counting `item`)."""
        own = 1 if item.reserved_for_id == self.user.pk and item.state == State.OFFERED else 0
        candidate = replace(
            self.candidate,
            load=len(self.held_queue_ids) - own,
            queue_load=self.held_in(item.queue_id) - own,
        )
        return Locked(self.user, candidate, excluded=False)  # the walk leaves out items that exclude it


def _member_and_held(actor, only_queues: list[int] | None) -> tuple[QuerySet[Queue], QuerySet[WorkItem]]:
    """The claimer's active member queues (its groups, valid roles), of `only_queues` when
    given, and what it holds or has reserved."""
    member = Queue.objects.filter(policy.queue_member_filter(actor, queue_ref="pk"), active=True)
    if only_queues is not None:
        member = member.filter(pk__in=id_set(only_queues))
    return member, WorkItem.objects.filter(load_filter(actor.pk))


def _claimer_queryset(actor, only_queues: list[int] | None):
    """The claimer's user row with its profile, its member queues (`_queues`) and the queue of
    each item it holds (`_held`), in one statement (PostgreSQL)."""
    member, held = _member_and_held(actor, only_queues)
    return (
        get_user_model()
        .objects.select_related("workstream_profile")
        .annotate(
            _queues=ArraySubquery(
                member.values(
                    j=JSONObject(
                        id=F("id"), roles=F("lifecycle__action_roles"), cap=F("capacity_per_user"), weight=F("weight")
                    )
                )
            ),
            _held=ArraySubquery(held.values("queue_id")),
        )
        .filter(pk=actor.pk)
    )


_LOCK_AND_NAME_SQL = (
    "SELECT q.id, q.name FROM auth_user u LEFT JOIN workitems_queue q ON q.name = ANY(%s) "
    "WHERE u.id = %s FOR UPDATE OF u"
)


def lock_user_naming_queues(user_id: int, names: list[str]) -> dict[str, int]:
    """constraints.lock_user, and in the same statement the ids of the queues `names` (those
    that exist): claim-next naming queues pays no round trip of its own for the names."""
    with connection.cursor() as cur:
        cur.execute(_LOCK_AND_NAME_SQL, [names, user_id])
        return {name: qid for qid, name in cur.fetchall() if qid is not None}


def claimer_lock(actor, *, queue_names: list[str] | None = None) -> Claimer:
    """Lock `actor`'s user row (what it holds cannot change under the claim), then read, in one
    statement on PostgreSQL, its profile, the queues of what it holds, and its active member
    queues (its groups, valid roles; of `queue_names` when given) with their lifecycle's roles,
    per-user capacity and weight. `Claimer.named` maps each named queue that exists to its id."""
    named: dict[str, int] = {}
    if queue_names is None:
        lock_user(actor.pk)  # its own statement: the read's snapshot comes after the lock (constraints.lock_candidate)
    elif connection.vendor == "postgresql":
        named = lock_user_naming_queues(actor.pk, queue_names)
    else:
        lock_user(actor.pk)
        named = dict(Queue.objects.filter(name__in=queue_names).values_list("name", "id"))
    only_queues = None if queue_names is None else sorted(named.values())
    if connection.vendor == "postgresql":
        n = len(policy.group_ids_of(actor))

        def build(stand: sqlcache.Stand):
            return _claimer_queryset(stand_in_user(stand, n), None if only_queues is None else stand.array("only"))

        template = sqlcache.template(("claimer_lock", n, only_queues is not None), build)
        if template is not None:
            (user,) = template.fetch({**user_values(actor), "only": only_queues})
        else:
            user = _claimer_queryset(actor, only_queues).get()
        queues = [(q["id"], q["roles"], q["cap"], q["weight"]) for q in user._queues]
        held_ids = list(user._held)
    else:  # the embedded SQLite default: three statements
        member, held = _member_and_held(actor, only_queues)
        user = get_user_model().objects.select_related("workstream_profile").get(pk=actor.pk)
        queues = list(member.values_list("id", "lifecycle__action_roles", "capacity_per_user", "weight"))
        held_ids = list(held.values_list("queue_id", flat=True))
    profile = getattr(user, "workstream_profile", None) if has_profile(user) else None
    now = timezone.now()
    candidate = Candidate(
        user_id=user.pk,
        username=user.username,
        is_active=user.is_active,
        capacity=profile.capacity if profile else None,
        skills=profile.skills if profile and isinstance(profile.skills, dict) else {},
        out_of_office=bool(
            profile
            and profile.out_of_office_from is not None
            and profile.out_of_office_from <= now
            and (profile.out_of_office_until is None or now < profile.out_of_office_until)
        ),
        delegate_id=profile.delegate_id if profile else None,
        last_assigned_at=profile.last_assigned_at if profile else None,
    )
    # The caller's cached groups and roles stay the caller's: the lock only reads the row.
    unique = sorted({q[0]: q for q in queues}.values(), key=lambda q: q[0])
    return Claimer(actor, candidate, [q[:3] for q in unique], held_ids, named)


def claim_next_candidate_ids(
    *,
    actor,
    queue_ids: list[int],
    only_queues: list[int] | None,
    k: int,
    skip: list[int] | None = None,
    scored: bool = False,
) -> list[int]:
    """Up to `k` ids of OFFERED items `actor` may claim, best first (priority desc, due_at asc,
    created_at asc; `scored`: by the score, _SCORE_SQL), leaving out `skip` (rows already
    tried), walking the claim-next index per queue so the cost does not grow with the number
    of open items."""
    params = _walk_params(actor, queue_ids, only_queues, k, skip)
    if connection.vendor != "postgresql":  # the embedded SQLite default: the ORM's portable query
        qs = WorkItem.objects.filter(policy.claimable_filter(actor), queue__active=True).filter(
            Q(follow_up_at__isnull=True) | Q(follow_up_at__lte=timezone.now())
        )
        if only_queues is not None:
            qs = qs.filter(queue_id__in=only_queues)
        qs = qs.exclude(pk__in=list(skip or []))
        if not scored:
            return list(qs.order_by(*CLAIM_ORDER).values_list("id", flat=True)[:k])
        now = params["now"]
        rows = qs.values_list("id", "queue__weight", "priority", "created_at")
        ranked = sorted(rows, key=lambda r: -r[1] * (r[2] + (now - r[3]).total_seconds() / CLAIM_NEXT_AGING_SECONDS))
        return [r[0] for r in ranked[:k]]
    # Prepared (one plan per connection): claim-next runs this after every lock that found
    # nothing, the common answer of a busy queue with many callers.
    with sqlcache.prepared_cursor() as cur:
        cur.execute(_claim_next_sql(scored, k), params)
        return [row[0] for row in cur.fetchall()]
