"""Who may do what: the one place each rule of access is defined.

- which platform roles may fire each action by default (a lifecycle's
  `action_roles` replaces an entry; the system, actor=None, is always allowed);
- the relation an actor must have to the item (assignee, reservee, creator,
  or a supervisor standing in for them);
- who "sees everything" (every item, user and queue), who sees an item (`may_see`, and its
  ORM form `visible_filter`), and who reads a queue's sensitive context keys unmasked
  (`sees_sensitive`);
- candidacy: who may claim an OFFERED item. It has three forms that must agree:
  the Python predicate `may_claim` (the definition), the ORM filter
  `claimable_filter` (one item, a list, the embedded SQLite walk) and the SQL
  fragment `CANDIDATE_SQL` (claim-next's index walk on PostgreSQL); a property
  test checks them against each other on random cases. Without the state it is the
  item's pool (`in_pool`, `pool_filter`);
- separation of duties: which items bind each other (`sod_bound`, the definition, and its
  ORM form `sod_siblings_filter`, which distribution's constraint runs; a property test checks
  them against each other on random cases);
- who may hold an item someone gives it to (`hold_refusal`: an active person in its pool,
  unless a supervisor overrides) and who may stand in for an absent user (`delegate_refusal`).

Policy imports models and the directory's role lookup; it never imports
services or selectors (selectors build on it).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db.models import Exists, OuterRef, Q
from django.db.models.expressions import RawSQL

from directory.models import Department, Profile, Role, RoleAssignment
from directory.roles import ADMIN, ROLES, SERVICE, SUPERVISOR, SYSTEM, WORKER, role_group_name, roles_of, user_groups
from workitems import crypto
from workitems.models import ACTIONS, CREATE, Lifecycle, Queue, SodScope, State, WorkItem

# --- roles per action ------------------------------------------------------------------

_STAFF = frozenset({SUPERVISOR, ADMIN})
_HANDS_ON = frozenset({WORKER, SUPERVISOR, ADMIN})
_DEFAULT_BY_ACTION: dict[str, frozenset[str]] = {
    CREATE: frozenset({ADMIN, SUPERVISOR, SERVICE}),
    "offer": _STAFF,
    "assign": _STAFF,
    "suspend": _STAFF,
    "resume": _STAFF,
    "escalate": _STAFF,
    "move": _STAFF,
    "update": _STAFF,
    "reserve": _STAFF,
    "cancel": frozenset({SERVICE, SUPERVISOR, ADMIN}),
    # an optional item no longer needed: whoever may withdraw it (the process that made it)
    "skip": frozenset({SERVICE, SUPERVISOR, ADMIN}),
    # the SLA scan's own steps: the system only
    "sla_at_risk": frozenset(),
    "sla_breach": frozenset(),
}
# Who may fire each action by default: the "who" column of the lifecycle table. Every
# action of the table has an entry; those not named above are hands-on work.
DEFAULT_ACTION_ROLES: dict[str, frozenset[str]] = {
    name: _DEFAULT_BY_ACTION.get(name, _HANDS_ON) for name in (CREATE, *ACTIONS)
}

SEES_EVERYTHING = frozenset({ADMIN, SUPERVISOR, SERVICE})
# Who defines task types (POST/PATCH /task-types, POST /workflows): whoever may create items. A
# task type's defaults are what a create could name itself; its sensitive keys only mask more.
DEFINES_TASK_TYPES = DEFAULT_ACTION_ROLES[CREATE]
SUPERVISING = _STAFF


def roles_for(actor) -> frozenset[str]:
    """The actor's platform roles; the system (None) holds the pseudo-role `system`."""
    return frozenset({SYSTEM}) if actor is None else roles_of(actor)


def sees_everything(actor) -> bool:
    """The system, admins, supervisors and service clients see every item, user and queue."""
    return actor is None or bool(roles_of(actor) & SEES_EVERYTHING)


def may_define_task_types(actor) -> bool:
    """Admins, supervisors and service clients (the roles that create items) define task types."""
    return actor is None or bool(roles_of(actor) & DEFINES_TASK_TYPES)


def is_supervisor(actor) -> bool:
    """Supervisors and admins stand in for the assignee or creator where a rule says so."""
    return bool(roles_of(actor) & SUPERVISING)


def lifecycle_action_roles(action: str, overrides: dict | None) -> frozenset[str]:
    """The roles that may fire `action` under a lifecycle's `action_roles` (None: the defaults)."""
    override = (overrides or {}).get(action)
    return frozenset(override) if override is not None else DEFAULT_ACTION_ROLES[action]


def action_roles(action: str, item: WorkItem | None = None) -> frozenset[str]:
    """The roles that may fire `action` on `item`: its lifecycle's override, else the default."""
    return lifecycle_action_roles(action, item.lifecycle.action_roles if item is not None else None)


def role_allows(action: str, item: WorkItem | None, actor) -> bool:
    return actor is None or bool(roles_of(actor) & action_roles(action, item))


# --- relation to the item ----------------------------------------------------------------

ASSIGNEE, ASSIGNEE_OR_SUPERVISOR, CREATOR_OR_SUPERVISOR = "assignee", "assignee_or_supervisor", "creator_or_supervisor"
RESERVEE = "reservee"
RELATIONS = {
    "accept": RESERVEE,
    "reject": RESERVEE,
    "start": ASSIGNEE,
    "complete": ASSIGNEE,
    "fail": ASSIGNEE,
    "set_sub_status": ASSIGNEE,
    "release": ASSIGNEE_OR_SUPERVISOR,
    "delegate": ASSIGNEE_OR_SUPERVISOR,
    "forward": ASSIGNEE_OR_SUPERVISOR,
    "cancel": CREATOR_OR_SUPERVISOR,
    "skip": CREATOR_OR_SUPERVISOR,
}
RELATION_NAMES = {
    ASSIGNEE: "the assignee",
    ASSIGNEE_OR_SUPERVISOR: "the assignee or a supervisor",
    RESERVEE: "the user it is reserved for",
    CREATOR_OR_SUPERVISOR: "the creating client or a supervisor",
}


def relation_allows(action: str, item: WorkItem, actor) -> bool:
    relation = RELATIONS.get(action)
    if relation is None or actor is None:
        return True
    if relation == ASSIGNEE:
        return item.assignee_id == actor.pk
    if relation == RESERVEE:
        return item.reserved_for_id == actor.pk
    if relation == ASSIGNEE_OR_SUPERVISOR:
        return is_supervisor(actor) or item.assignee_id == actor.pk
    return is_supervisor(actor) or (item.created_by_id is not None and item.created_by_id == actor.pk)


def may_fire(action: str, item: WorkItem, actor) -> bool:
    """Whether `actor` may fire `action` on `item` now (its lifecycle, roles and relation), for
    the actions not fired by id as well (`update`: PATCH /workitems/{id})."""
    return (
        action in item.available_actions() and role_allows(action, item, actor) and relation_allows(action, item, actor)
    )


def allowed_actions_for(item: WorkItem, actor) -> list[str]:
    """What `actor` may do to `item` now: the lifecycle's available actions that the actor's
    roles and relation to the item permit (constraints on a target user aside). Only actions
    a caller fires by id are listed (`offer` and `reserve` are distribution's own steps)."""
    return [
        a
        for a in item.available_actions()
        if ACTIONS[a].route and role_allows(a, item, actor) and relation_allows(a, item, actor)
    ]


# --- candidacy -----------------------------------------------------------------------------


def may_claim(
    *,
    state: str,
    user_id: int,
    user_group_ids: Collection[int],
    queue_member: bool,
    item_user_ids: Collection[int],
    item_group_ids: Collection[int],
    excluded_ids: Collection[int],
    reserved_for_id: int | None,
    item_department_id: int | None,
    user_department_ids: Collection[int],
) -> bool:
    """The candidacy rule: may this user claim this item? An OFFERED item not reserved for
    someone else, that does not exclude the user, and either names the user (directly or
    through one of their groups) or names nobody and sits in a queue the user is a member of
    (through a group or a role assignment valid now); and, when the item has a department,
    the user belongs to it or to one of its sub-departments."""
    if state != State.OFFERED or reserved_for_id not in (None, user_id) or user_id in excluded_ids:
        return False
    return in_pool(
        user_id=user_id,
        user_group_ids=user_group_ids,
        queue_member=queue_member,
        item_user_ids=item_user_ids,
        item_group_ids=item_group_ids,
        item_department_id=item_department_id,
        user_department_ids=user_department_ids,
    )


def in_pool(
    *,
    user_id: int,
    user_group_ids: Collection[int],
    queue_member: bool,
    item_user_ids: Collection[int],
    item_group_ids: Collection[int],
    item_department_id: int | None,
    user_department_ids: Collection[int],
) -> bool:
    """The item's pool, the candidacy rule without the state: the item names the user
    (directly or through one of their groups), or it names nobody and the user is a member
    of its queue; and an item with a department is for members of that department's subtree
    only (`user_department_ids`: the user's department and every department above it).
    "Would be a candidate if it were offered", before exclusions."""
    if item_department_id is not None and item_department_id not in user_department_ids:
        return False
    if item_user_ids or item_group_ids:
        return user_id in item_user_ids or bool(set(item_group_ids) & set(user_group_ids))
    return queue_member


def group_ids_of(user) -> list[int]:
    return [gid for gid, _ in user_groups(user)]


def role_queue_ids(actor, at: datetime | None = None):
    """(queue_id) rows of the queues `actor` holds through role assignments valid at `at` (now)."""
    valid_roles = RoleAssignment.objects.valid_at(at).filter(user_id=actor.pk).values("role_id")
    return Role.queues.through.objects.filter(role_id__in=valid_roles).values("queue_id")


def queue_member_filter(actor, *, queue_ref: str = "queue_id") -> Q:
    """The queue at `queue_ref` is one `actor` is a member of: one of its groups, or a valid role."""
    gids = group_ids_of(actor)
    groups = Queue.candidate_groups.through.objects.filter(queue_id=OuterRef(queue_ref), group_id__in=gids)
    roles = role_queue_ids(actor).filter(queue_id=OuterRef(queue_ref))
    return Q(Exists(groups)) | Q(Exists(roles))


def pool_filter(actor) -> Q:
    """`in_pool` as an ORM filter over work items, for `actor`."""
    gids = group_ids_of(actor)
    item_users = WorkItem.candidate_users.through.objects.filter(workitem_id=OuterRef("pk"))
    item_groups = WorkItem.candidate_groups.through.objects.filter(workitem_id=OuterRef("pk"))
    named = Exists(item_users.filter(user_id=actor.pk)) | Exists(item_groups.filter(group_id__in=gids))
    unnamed = ~Exists(item_users) & ~Exists(item_groups) & queue_member_filter(actor)
    return (named | unnamed) & department_filter(actor)


# The departments a user belongs to for routing: their profile's department and every one
# above it (an item of department D is for the members of D's subtree, that is, for the users
# whose chain up the tree passes D). UNION, not UNION ALL: a cycle an edit made ends the walk.
_DEPARTMENTS_UP_SQL = """WITH RECURSIVE up(id, parent_id) AS (
  SELECT d.id, d.parent_id FROM directory_department d
  JOIN directory_profile p ON p.department_id = d.id WHERE p.user_id = {uid}
  UNION SELECT d.id, d.parent_id FROM directory_department d JOIN up ON d.id = up.parent_id
) SELECT id FROM up"""


def department_filter(actor) -> Q:
    """The item has no department, or `actor` belongs to its subtree (the ORM form)."""
    up = RawSQL(_DEPARTMENTS_UP_SQL.format(uid="%s"), [actor.pk])  # noqa: S611 - constant SQL, bound parameter
    return Q(department__isnull=True) | Q(department_id__in=up)


_DEPARTMENTS_DOWN_SQL = """WITH RECURSIVE down(id) AS (
  SELECT id FROM directory_department WHERE id = %s
  UNION SELECT d.id FROM directory_department d JOIN down ON d.parent_id = down.id
) SELECT id FROM down"""


def department_subtree(department_id: int) -> RawSQL:
    """The ids of a department and every one below it, as a subquery (distribution's pool:
    the users whose department is in it are those `department_filter` lets through)."""
    return RawSQL(_DEPARTMENTS_DOWN_SQL, [department_id])  # noqa: S611 - constant SQL, bound parameter


def department_ids_of(user) -> set[int]:
    """The user's department and every one above it (the Python form, for one user)."""
    parents = dict(Department.objects.values_list("id", "parent_id"))
    start = Profile.objects.filter(user_id=user.pk).values_list("department_id", flat=True).first()
    seen: set[int] = set()
    while start is not None and start not in seen:
        seen.add(start)
        start = parents.get(start)
    return seen


def excluded_filter(actor) -> Q:
    """The item's excluded_users holds `actor`."""
    return Q(Exists(WorkItem.excluded_users.through.objects.filter(workitem_id=OuterRef("pk"), user_id=actor.pk)))


def claimable_filter(actor) -> Q:
    """`may_claim` as an ORM filter over work items, for `actor`."""
    not_reserved_for_others = Q(reserved_for__isnull=True) | Q(reserved_for=actor.pk)
    return Q(state=State.OFFERED) & not_reserved_for_others & pool_filter(actor) & ~excluded_filter(actor)


# --- visibility ----------------------------------------------------------------------------
#
# Who sees an item. Two forms that must agree (tests/workitems/test_visibility.py): the
# Python predicate `may_see` (the definition) and the ORM filter `visible_filter` (lists, and
# the lock of every command). The filter is built of uncorrelated `IN (subquery)` tests, each
# evaluated once per query (a hashed subplan), so a list ordered by an index walks that index
# and stops at the page; the OR of correlated EXISTS it replaces made PostgreSQL estimate a
# cost past jit_above_cost and scan and sort every visible row.


def may_see(
    *,
    sees_everything: bool,
    user_id: int,
    assignee_id: int | None,
    queue_member: bool,
    item_user_ids: Collection[int],
    item_group_ids: Collection[int],
    user_group_ids: Collection[int],
) -> bool:
    """The visibility rule: the system, admins, supervisors and service clients see every item;
    anyone else the items they hold, the items of the queues they are a member of (a group or a
    role assignment valid now), and the items that name them (directly or through a group)."""
    if sees_everything:
        return True
    if assignee_id == user_id or queue_member or user_id in item_user_ids:
        return True
    return bool(set(item_group_ids) & set(user_group_ids))


def visible_filter(actor) -> Q | None:
    """`may_see` as an ORM filter over work items; None when `actor` sees every item."""
    if sees_everything(actor):
        return None
    gids = group_ids_of(actor)
    queue_by_group = Queue.candidate_groups.through.objects.filter(group_id__in=gids).values("queue_id")
    named_user = WorkItem.candidate_users.through.objects.filter(user_id=actor.pk).values("workitem_id")
    named_group = WorkItem.candidate_groups.through.objects.filter(group_id__in=gids).values("workitem_id")
    return (
        Q(assignee_id=actor.pk)
        | Q(queue_id__in=queue_by_group)
        | Q(queue_id__in=role_queue_ids(actor))
        | Q(pk__in=named_user)
        | Q(pk__in=named_group)
    )


# `may_claim` in SQL over a work-item row `w`, for claim-next's walk. Parameters: %(uid)s the
# user, %(gids)s their group ids (bigint[]). Queue membership is the walk's own: it visits only
# the caller's member queues (`CANDIDATE_SQL_IN_MEMBER_QUEUE`) plus, anywhere, the items that
# name the caller (`CANDIDATE_SQL_NAMED`).
_NOT_EXCLUDED_SQL = (
    """
      AND (w.reserved_for_id IS NULL OR w.reserved_for_id = %(uid)s)
      AND NOT EXISTS (SELECT 1 FROM workitems_workitem_excluded_users e
                      WHERE e.workitem_id = w.id AND e.user_id = %(uid)s)
      AND (w.department_id IS NULL OR w.department_id IN ("""
    + _DEPARTMENTS_UP_SQL.format(uid="%(uid)s")
    + """))
"""
)
CANDIDATE_SQL_IN_MEMBER_QUEUE = (
    "w.state = 'OFFERED'"
    + _NOT_EXCLUDED_SQL
    + """
      AND (
        (NOT EXISTS (SELECT 1 FROM workitems_workitem_candidate_users cu WHERE cu.workitem_id = w.id)
         AND NOT EXISTS (SELECT 1 FROM workitems_workitem_candidate_groups cg WHERE cg.workitem_id = w.id))
        OR EXISTS (SELECT 1 FROM workitems_workitem_candidate_users cu
                   WHERE cu.workitem_id = w.id AND cu.user_id = %(uid)s)
        OR EXISTS (SELECT 1 FROM workitems_workitem_candidate_groups cg
                   WHERE cg.workitem_id = w.id AND cg.group_id = ANY(%(gids)s::bigint[]))
      )"""
)
CANDIDATE_SQL_NAMED = (
    "w.state = 'OFFERED'"
    + _NOT_EXCLUDED_SQL
    + """
      AND w.id IN (SELECT workitem_id FROM workitems_workitem_candidate_users WHERE user_id = %(uid)s
                   UNION SELECT workitem_id FROM workitems_workitem_candidate_groups
                         WHERE group_id = ANY(%(gids)s::bigint[]))"""
)


# --- separation of duties -------------------------------------------------------------------
#
# Nobody acts on two items that bind each other. Two forms that must agree
# (tests/cases/test_sod_case.py): the predicate `sod_bound` (the definition) and the ORM filter
# `sod_siblings_filter` (distribution.constraints.sod_blocked_ids).


def sod_bound(a, b) -> bool:
    """Whether items `a` and `b` bind each other for separation of duties: two different items
    with the same non-empty `sod_key`, of the same workflow run (`workflow_id`, `run_id`), or of
    the same case when either has `sod_scope: case`. Symmetric, so the order in which a user
    acts on two items never decides whether the second is refused."""
    if a.pk == b.pk or not a.sod_key or a.sod_key != b.sod_key:
        return False
    if (a.workflow_id, a.run_id) == (b.workflow_id, b.run_id):
        return True
    return a.case_id is not None and a.case_id == b.case_id and SodScope.CASE in (a.sod_scope, b.sod_scope)


def sod_siblings_filter(item: WorkItem) -> Q:
    """`sod_bound(item, ·)` as an ORM filter over work items (the item itself left out)."""
    if not item.sod_key:
        return Q(pk__in=[])
    same = Q(workflow_id=item.workflow_id, run_id=item.run_id)
    if item.case_id is not None:
        in_case = Q(case_id=item.case_id)
        same |= in_case if item.sod_scope == SodScope.CASE else in_case & Q(sod_scope=SodScope.CASE)
    siblings = Q(sod_key=item.sod_key) & same
    return siblings & ~Q(pk=item.pk) if item.pk else siblings


# --- who may hold an item ------------------------------------------------------------------
#
# The target of assign and delegate, the reservee who accepts, a direct assignee on create
# and the items an absence hands to the absent user's delegate. Distribution's own pushes
# choose from the candidates it resolved and do not come through here.

# The roles of the people who do the work. An admin (platform administration) and a service
# client (a machine) are not, even where the action roles would let them start and complete:
# an item held by one of them waits for someone whose job it is not.
PERSON_ROLES = frozenset({WORKER, SUPERVISOR})
HOLD_ACTIVE, HOLD_PERSON, HOLD_CANDIDATE = "active", "person", "candidate"
NOT_A_PERSON = "is not a person who does work (a worker or supervisor, not a service client)"


def is_person(user) -> bool:
    """An active account of someone who does work: a worker or supervisor role, no service role."""
    roles = roles_of(user)  # empty for an inactive account
    return bool(roles & PERSON_ROLES) and SERVICE not in roles


def work_actions(item: WorkItem) -> tuple[str, ...]:
    """The hands-on actions by which the holder finishes `item`: start (when its lifecycle
    requires it) and complete."""
    return ("start", "complete") if item.lifecycle.start_step == Lifecycle.START_REQUIRED else ("complete",)


def is_in_pool(user, item: WorkItem, *, related: dict | None = None) -> bool:
    """`in_pool` for one user and one item: a saved item, or one being created (`related`
    holds its `candidate_users` and `candidate_groups`)."""
    if related is None and item.pk:
        return WorkItem.objects.filter(pool_filter(user), pk=item.pk).exists()
    named_users = {u.pk for u in (related or {}).get("candidate_users", [])}
    named_groups = {g.pk for g in (related or {}).get("candidate_groups", [])}
    member = not (named_users or named_groups) and (
        Queue.objects.filter(pk=item.queue_id).filter(queue_member_filter(user, queue_ref="pk")).exists()
    )
    return in_pool(
        user_id=user.pk,
        user_group_ids=group_ids_of(user),
        queue_member=member,
        item_user_ids=named_users,
        item_group_ids=named_groups,
        item_department_id=item.department_id,
        user_department_ids=department_ids_of(user) if item.department_id is not None else (),
    )


def may_override_holding(actor) -> bool:
    """Who may give an item to someone outside its pool (`override`): the system, supervisors, admins."""
    return actor is None or is_supervisor(actor)


def hold_refusal(
    user, item: WorkItem, *, related: dict | None = None, override: bool = False
) -> tuple[str, str] | None:
    """Why `user` may not hold `item`, as (constraint, detail); None when they may.

    - active: the account is active;
    - person: someone who does work (`is_person`) whose work roles may fire the item's
      hands-on actions under its lifecycle (`work_actions`, `action_roles`);
    - candidate: in the item's pool (`in_pool`): named on it, or, when it names nobody, a
      member of its queue. A supervisor's explicit `override` waives this one only.

    The holding constraints (capacity, skills, exclusion, separation of duties) are
    checked after these (distribution.constraints.check_can_hold)."""
    name = user.username
    if not user.is_active:
        return HOLD_ACTIVE, f"user {name} is not active"
    if not is_person(user):
        return HOLD_PERSON, f"user {name} {NOT_A_PERSON}"
    roles = roles_of(user) & PERSON_ROLES
    refused = [a for a in work_actions(item) if not roles & action_roles(a, item)]
    if refused:
        return HOLD_PERSON, f"the roles of {name} may not {' or '.join(refused)} items of queue {item.queue.name}"
    if not override and not is_in_pool(user, item, related=related):
        what = f"work item {item.pk}" if item.pk else "the new item"
        return HOLD_CANDIDATE, (
            f"user {name} is not a candidate for {what}: neither named on it nor, as it names nobody, "
            f"a member of queue {item.queue.name}"
        )
    return None


def team_ids(user) -> set[int]:
    """The user's teams: their groups that are not platform-role groups (as the directory counts them)."""
    role_groups = {role_group_name(role) for role in ROLES}
    return {gid for gid, name in user_groups(user) if name not in role_groups}


def delegate_refusal(user, delegate) -> str | None:
    """Why `delegate` may not stand in for `user` during an absence; None when they may: an
    active person (`is_person`) who shares a team with them. Each item the absence hands over
    is checked again with `hold_refusal`; one the delegate may not hold goes back through
    distribution (or is suspended when IN_PROGRESS)."""
    if not delegate.is_active:
        return f"user {delegate.username} is not active"
    if not is_person(delegate):
        return f"user {delegate.username} {NOT_A_PERSON}"
    if not team_ids(user) & team_ids(delegate):
        return f"user {delegate.username} shares no team with {user.username}"
    return None


# --- sensitive context keys ------------------------------------------------------------------

MASK = "***"


def sees_sensitive(actor, item: WorkItem) -> bool:
    """Who reads the item's sensitive context keys (its queue's and its task type's) unmasked: the
    system, the client that created the item, and holders of a platform role the queue names
    in `sensitive_roles` (default admin and supervisor). Events always carry them masked
    (`masked_context(..., unmasked=False)`): the bus and webhooks have no single entitled reader."""
    if actor is None:
        return True
    if item.created_by_id is not None and item.created_by_id == actor.pk:
        return True
    return bool(roles_of(actor) & frozenset(item.queue.sensitive_roles or ()))


def masked_context(item: WorkItem, *, unmasked: bool) -> dict:
    """The item's context_data, with its sensitive keys (top level: its queue's and its task
    type's, WorkItem.sensitive_keys) replaced by MASK and its encrypted ones by
    crypto.ENCRYPTED_MARK unless `unmasked`; `unmasked`, the encrypted values decrypted
    (EncryptionUnavailable when the key ring cannot)."""
    data = item.context_data or {}
    if unmasked:
        return crypto.open_context(item.pk, data)
    return crypto.masked(data, sensitive=item.sensitive_keys, encrypted=item.queue.encrypted_keys or [], mask=MASK)
