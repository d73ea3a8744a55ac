"""Who may hold an item: candidate resolution and the constraints, in one fixed order.

Resolution takes the item's *pool* — its own candidate users and groups when
it names any, otherwise the members of its queue's candidate groups plus the
holders of a role assignment for the queue valid now — and filters it through
the constraints in this order (CONSTRAINTS):

1. active                 the account is active
2. available              not out of office; an absent user is replaced by
                          their delegate when the delegate is active and present
3. capacity               fewer open items than the queue's capacity_per_user
                          (in this queue) and the profile's capacity (overall)
4. skills                 holds every required skill (level ≥ 1)
5. excluded               not in the item's excluded_users
6. separation_of_duties   has not acted (held, claimed, started, completed,
                          failed) on another item of the same workflow run
                          with the same SoD key (or of the same case, under
                          `sod_scope: case`: policy.sod_bound)

Everything is loaded in a handful of set-based queries (no per-candidate
query), so resolving 1,000 candidates stays in milliseconds. The first
constraint that empties the list is reported, so an unassigned item can say why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.db.models import Exists, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone

from audit.models import AuditRecord
from config import sqlcache
from directory.models import RoleAssignment
from distribution.strategies import Candidate
from workitems import policy
from workitems.errors import ConstraintViolated
from workitems.models import HELD_STATES, Queue, State, WorkItem

CONSTRAINTS = ("active", "available", "capacity", "skills", "excluded", "separation_of_duties")
# Audit actions by which a user "acts" on an item, for separation of duties.
SOD_ACTIONS = ("claim", "accept", "start", "complete", "fail")


@dataclass
class Resolution:
    """The candidates left after every constraint, and the constraint that emptied the list."""

    candidates: list[Candidate]
    emptied_by: str | None = None
    pool_size: int = 0


def _item_named_ids(item: WorkItem, related: dict | None) -> tuple[set[int], set[int]]:
    if related is not None:
        return {u.pk for u in related.get("candidate_users", [])}, {g.pk for g in related.get("candidate_groups", [])}
    if not item.pk:
        return set(), set()
    users = set(WorkItem.candidate_users.through.objects.filter(workitem_id=item.pk).values_list("user_id", flat=True))
    groups = set(
        WorkItem.candidate_groups.through.objects.filter(workitem_id=item.pk).values_list("group_id", flat=True)
    )
    return users, groups


def pool_queryset(item: WorkItem, *, at: datetime | None = None, related: dict | None = None):
    """The users who could be candidates before any constraint, as a subquery of user ids
    (kept in the database: a pool of thousands never travels as a parameter list)."""
    User = get_user_model()
    users = User.objects.all()
    if item.department_id is not None:  # the department's subtree only (policy.in_pool)
        users = users.filter(workstream_profile__department_id__in=policy.department_subtree(item.department_id))
    named_users, named_groups = _item_named_ids(item, related)
    if named_users or named_groups:
        return users.filter(Q(pk__in=named_users) | Q(groups__in=named_groups)).values("id")
    queue_groups = Queue.candidate_groups.through.objects.filter(queue_id=item.queue_id).values("group_id")
    members = User.groups.through.objects.filter(group_id__in=queue_groups).values("user_id")
    holders = RoleAssignment.objects.valid_at(at).filter(role__queues=item.queue_id).values("user_id")
    return users.filter(Q(pk__in=members) | Q(pk__in=holders)).values("id")


def pool_user_ids(item: WorkItem, *, at: datetime | None = None, related: dict | None = None) -> set[int]:
    """The pool as a set of ids."""
    return {row["id"] for row in pool_queryset(item, at=at, related=related)}


_CANDIDATE_COLUMNS = (
    "id",
    "username",
    "is_active",
    "workstream_profile__skills",
    "workstream_profile__capacity",
    "workstream_profile__out_of_office_from",
    "workstream_profile__out_of_office_until",
    "workstream_profile__delegate_id",
    "workstream_profile__last_assigned_at",
)


def id_set(ids: list[int]):
    """`ids` for an `__in` filter: on PostgreSQL one array parameter (`IN (SELECT unnest(%s))`)
    instead of one placeholder per id, which for a pool of 1,000 is most of the cost."""
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", [ids])
    return ids


class _Count(Subquery):
    """`(SELECT count(*) FROM (<subquery>))`: a correlated count in the candidates' own statement."""

    template = "(SELECT count(*) FROM (%(subquery)s) _c)"
    output_field = IntegerField()


# --- load and capacity: the one definition ---------------------------------------------------

# What counts toward a user's load, the measure of the capacity constraint: the items they
# hold (assigned, in progress, suspended) and the items reserved for them (OFFERED). Each part
# is the column naming the user and the states it counts in; an item is in one part at most.
LOAD_PARTS: tuple[tuple[str, Q], ...] = (
    ("assignee_id", Q(state__in=HELD_STATES)),
    ("reserved_for_id", Q(state=State.OFFERED)),
)


def load_parts(user) -> tuple[Q, Q]:
    """LOAD_PARTS as filters over work items for one user (an id, or an expression such as
    OuterRef("pk")): (held, reserved)."""
    held, reserved = (Q(**{column: user}) & states for column, states in LOAD_PARTS)
    return held, reserved


def load_filter(user) -> Q:
    """The items that count toward `user`'s load (held plus reserved)."""
    held, reserved = load_parts(user)
    return held | reserved


def fits(load: int, limit: int | None) -> bool:
    """The capacity rule: a load of `load` items is within `limit` (None: no limit)."""
    return limit is None or load <= limit


def _load_columns(item: WorkItem) -> dict:
    """What each user holds and has reserved for them (load_parts), in all queues and in the
    item's, not counting the item itself: columns of the user's row."""
    others = WorkItem.objects.exclude(pk=item.pk) if item.pk else WorkItem.objects.all()
    held_q, reserved_q = load_parts(OuterRef("pk"))
    held = others.filter(held_q).values("id")
    reserved = others.filter(reserved_q).values("id")
    return {
        "_held": _Count(held),
        "_held_here": _Count(held.filter(queue_id=item.queue_id)),
        "_reserved": _Count(reserved),
        "_reserved_here": _Count(reserved.filter(queue_id=item.queue_id)),
    }


def _candidate(row, now) -> Candidate:
    uid, name, active, skills, capacity, ooo_from, ooo_until, delegate_id, last, held, held_here, res, res_here = row
    return Candidate(
        user_id=uid,
        username=name,
        is_active=active,
        capacity=capacity,
        skills=skills if isinstance(skills, dict) else {},
        out_of_office=ooo_from is not None and ooo_from <= now and (ooo_until is None or now < ooo_until),
        delegate_id=delegate_id,
        last_assigned_at=last,
        load=held + res,
        queue_load=held_here + res_here,
    )


def load_candidates(users, item: WorkItem) -> dict[int, Candidate]:
    """Profiles and current loads of `users` (ids, or a subquery of ids), in ONE query
    returning plain tuples. Load is what a user holds plus what is reserved for them."""
    if not isinstance(users, QuerySet):
        users = sorted(set(users))
        if not users:
            return {}
        users = id_set(users)
    now = timezone.now()
    columns = _load_columns(item)
    rows = get_user_model().objects.filter(pk__in=users).annotate(**columns).values_list(*_CANDIDATE_COLUMNS, *columns)
    return {row[0]: _candidate(row, now) for row in rows}


@dataclass
class Locked:
    """A user locked for holding an item: the row, the candidate as the constraints see it,
    and whether the item excludes them."""

    user: object
    candidate: Candidate
    excluded: bool


def lock_candidate(user_id: int, item: WorkItem) -> Locked | None:
    """Lock the user's row (so the capacity count cannot change under us), then read the user,
    their profile, their loads and whether `item` excludes them in one statement. Two, not
    one: under READ COMMITTED a statement's snapshot is taken before it waits for a lock, so
    loads read in the locking statement could miss an assignment committed by the holder.
    Lock order everywhere: item row, then round-robin cursor, then user row."""
    lock_user(user_id)
    columns = _load_columns(item)
    if item.pk:
        through = WorkItem.excluded_users.through.objects
        columns["_excluded"] = Exists(through.filter(workitem_id=item.pk, user_id=OuterRef("pk")))
    user = get_user_model().objects.select_related("workstream_profile").annotate(**columns).filter(pk=user_id).first()
    if user is None:
        return None
    profile = getattr(user, "workstream_profile", None) if has_profile(user) else None
    row = (
        user.pk,
        user.username,
        user.is_active,
        *(
            (p.skills, p.capacity, p.out_of_office_from, p.out_of_office_until, p.delegate_id, p.last_assigned_at)
            if (p := profile) is not None
            else ({}, None, None, None, None, None)
        ),
        user._held,
        user._held_here,
        user._reserved,
        user._reserved_here,
    )
    return Locked(user, _candidate(row, timezone.now()), bool(getattr(user, "_excluded", False)))


def has_profile(user) -> bool:
    """Whether select_related('workstream_profile') found a profile."""
    try:
        user.workstream_profile  # noqa: B018 - select_related filled it (or knows there is none)
    except ObjectDoesNotExist:
        return False
    return True


def _excluded_ids(item: WorkItem, related: dict | None) -> set[int]:
    if related is not None:
        return {u.pk for u in related.get("excluded_users", [])}
    if not item.pk:
        return set()
    return set(WorkItem.excluded_users.through.objects.filter(workitem_id=item.pk).values_list("user_id", flat=True))


def sod_blocked_ids(item: WorkItem, user_ids: Iterable[int]) -> set[int]:
    """Users among `user_ids` who held or acted on an item bound to `item` (policy.sod_bound:
    the same SoD key in the same workflow run, or in the same case under `sod_scope: case`)."""
    if not item.sod_key:
        return set()
    ids = id_set(list(user_ids))
    siblings = WorkItem.objects.filter(policy.sod_siblings_filter(item))
    held = set(siblings.filter(assignee_id__in=ids).values_list("assignee_id", flat=True))
    acted = set(
        AuditRecord.objects.filter(
            work_item__in=siblings.values("pk"), actor_id__in=ids, action__in=SOD_ACTIONS
        ).values_list("actor_id", flat=True)
    )
    return held | acted


def under_capacity(c: Candidate, queue_limit: int | None) -> bool:
    """Room for one more item: in the queue (`queue_limit`, its capacity_per_user) and overall."""
    return fits(c.queue_load + 1, queue_limit) and fits(c.load + 1, c.capacity)


def _has_skills(c: Candidate, required: list[str]) -> bool:
    return all(isinstance(c.skills.get(s), int) and c.skills[s] >= 1 for s in required)


def apply_constraints(
    candidates: list[Candidate],
    item: WorkItem,
    *,
    related: dict | None = None,
    skip: tuple[str, ...] = (),
    excluded: set[int] | None = None,
) -> Resolution:
    """Filter `candidates` through CONSTRAINTS in order (minus `skip`); `excluded`, when the
    caller has read it, is the item's excluded users."""
    pool = len(candidates)
    current = list(candidates)
    emptied_by = None

    def step(name: str, keep) -> None:
        nonlocal current, emptied_by
        if name in skip or not current:
            return
        current = keep(current)
        if not current and emptied_by is None:
            emptied_by = name

    step("active", lambda cs: [c for c in cs if c.is_active])
    step("available", lambda cs: _substitute_delegates(cs, item))
    step("capacity", lambda cs: [c for c in cs if under_capacity(c, item.queue.capacity_per_user)])
    required = item.required_skills or []
    if required:
        step("skills", lambda cs: [c for c in cs if _has_skills(c, required)])
    if excluded is None:
        excluded = _excluded_ids(item, related)
    if excluded:
        step("excluded", lambda cs: [c for c in cs if c.user_id not in excluded])
    if item.sod_key:

        def sod(cs: list[Candidate]) -> list[Candidate]:
            blocked = sod_blocked_ids(item, [c.user_id for c in cs])
            return [c for c in cs if c.user_id not in blocked]

        step("separation_of_duties", sod)
    return Resolution(current, emptied_by, pool)


def _substitute_delegates(cs: list[Candidate], item: WorkItem) -> list[Candidate]:
    """Absent users drop out; their delegates stand in (once each, if active and present)."""
    present = [c for c in cs if not c.out_of_office]
    absent = [c for c in cs if c.out_of_office and c.delegate_id]
    if not absent:
        return present
    have = {c.user_id for c in present}
    wanted = {c.delegate_id for c in absent} - have
    delegates = load_candidates(wanted, item) if wanted else {}
    for c in absent:
        d = delegates.get(c.delegate_id)
        if d is not None and d.is_active and not d.out_of_office and d.user_id not in have:
            d.on_behalf_of = c.user_id
            present.append(d)
            have.add(d.user_id)
    return present


def resolve(item: WorkItem, *, at: datetime | None = None, related: dict | None = None) -> Resolution:
    """Candidates for `item` after every constraint, sorted by user id (strategies rely on it)."""
    cands = sorted(load_candidates(pool_queryset(item, at=at, related=related), item).values(), key=lambda c: c.user_id)
    if not cands:
        return Resolution([], "candidates", 0)
    res = apply_constraints(cands, item, related=related)
    res.candidates.sort(key=lambda c: c.user_id)
    return res


# --- one user: claim, direct assignment, delegation -----------------------------------------


def is_candidate(user, item: WorkItem) -> bool:
    """May `user` claim `item` now: OFFERED, in its pool (named, queue group member, or valid
    role holder), not excluded, not reserved for someone else (policy.may_claim)? One query."""
    return WorkItem.objects.filter(policy.claimable_filter(user), pk=item.pk).exists()


def check_candidate(user, item: WorkItem, *, known: bool | None = None) -> None:
    """ConstraintViolated unless `user` is a candidate for `item`; `known` is the answer when
    the caller read it with the row (selectors.work_item_get_for(claimer=…))."""
    if not (is_candidate(user, item) if known is None else known):
        raise ConstraintViolated(
            f"user {user.username} is not a candidate for work item {item.pk}", constraint="candidate"
        )


def lock_user(user_id: int) -> None:
    """Serialise assignments to one user, so two concurrent ones cannot both pass capacity.
    Lock order everywhere: item row, then round-robin cursor, then user row. On PostgreSQL one
    prepared statement (the ORM built and compiled this lock on every claim)."""
    users = get_user_model()
    if connection.vendor != "postgresql":
        list(users.objects.select_for_update().filter(pk=user_id).values_list("pk"))
        return
    meta, quote = users._meta, connection.ops.quote_name
    with sqlcache.prepared_cursor() as cur:
        cur.execute(f"SELECT 1 FROM {quote(meta.db_table)} WHERE {quote(meta.pk.column)} = %s FOR UPDATE", [user_id])


def check_can_hold(
    user,
    item: WorkItem,
    *,
    related: dict | None = None,
    skip: tuple[str, ...] = ("available",),
    locked: Locked | None = None,
) -> None:
    """All constraints for `user` holding `item`; ConstraintViolated names the first that fails.

    The user's row is locked first, in the statement that reads their loads (lock_candidate),
    so the capacity count cannot change under us; `locked` is that read when the caller made it.
    """
    locked = locked or lock_candidate(user.pk, item)
    cands = [locked.candidate] if locked is not None else []
    excluded = None
    if related is None and item.pk and locked is not None:
        excluded = {user.pk} if locked.excluded else set()
    res = apply_constraints(cands, item, related=related, skip=skip, excluded=excluded)
    if not res.candidates:
        reason = res.emptied_by or "active"
        raise ConstraintViolated(_explain(reason, user, item), constraint=reason)


def _explain(constraint: str, user, item: WorkItem) -> str:
    return {
        "active": f"user {user.username} is not active",
        "available": f"user {user.username} is out of office",
        "capacity": f"user {user.username} has no capacity left (queue {item.queue.name})",
        "skills": f"user {user.username} lacks a required skill ({', '.join(item.required_skills)})",
        "excluded": f"user {user.username} is excluded from this item",
        "separation_of_duties": f"separation of duties: {user.username} already acted on another item of "
        f"workflow run {item.workflow_id}/{item.run_id}"
        + (f" or of case {item.case_id}" if item.case_id is not None else "")
        + f" with SoD key {item.sod_key!r}",
    }.get(constraint, f"user {user.username} may not hold this item ({constraint})")
