"""Who may do what: the one place each rule of access is defined.

- which platform roles may fire each action by default (a lifecycle's
  `action_roles` replaces an entry; the system, actor=None, is always allowed);
- the relation an actor must have to the item (assignee, reservee, creator,
  or a supervisor standing in for them);
- who "sees everything" (every item, user and queue);
- candidacy: who may claim an OFFERED item. It has three forms that must agree:
  the Python predicate `may_claim` (the definition), the ORM filter
  `claimable_filter` (one item, a list, the embedded SQLite walk) and the SQL
  fragment `CANDIDATE_SQL` (claim-next's index walk on PostgreSQL); a property
  test checks them against each other on random cases.

Policy imports models and the directory's role lookup; it never imports
services or selectors (selectors build on it).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db.models import Exists, OuterRef, Q

from directory.models import Role, RoleAssignment
from directory.roles import ADMIN, SERVICE, SUPERVISOR, SYSTEM, WORKER, roles_of, user_groups
from workitems.models import ACTIONS, CREATE, Queue, State, WorkItem

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
    "reserve": _STAFF,
    "cancel": frozenset({SERVICE, SUPERVISOR, ADMIN}),
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
SUPERVISING = _STAFF


def roles_for(actor) -> frozenset[str]:
    """The actor's platform roles; the system (None) holds the pseudo-role `system`."""
    return frozenset({SYSTEM}) if actor is None else roles_of(actor)


def sees_everything(actor) -> bool:
    """The system, admins, supervisors and service clients see every item, user and queue."""
    return actor is None or bool(roles_of(actor) & SEES_EVERYTHING)


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
    "cancel": CREATOR_OR_SUPERVISOR,
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
) -> bool:
    """The candidacy rule: may this user claim this item? An OFFERED item not reserved for
    someone else, that does not exclude the user, and either names the user (directly or
    through one of their groups) or names nobody and sits in a queue the user is a member of
    (through a group or a role assignment valid now)."""
    if state != State.OFFERED or reserved_for_id not in (None, user_id) or user_id in excluded_ids:
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


def claimable_filter(actor) -> Q:
    """`may_claim` as an ORM filter over work items, for `actor`."""
    gids = group_ids_of(actor)
    item_users = WorkItem.candidate_users.through.objects.filter(workitem_id=OuterRef("pk"))
    item_groups = WorkItem.candidate_groups.through.objects.filter(workitem_id=OuterRef("pk"))
    named = Exists(item_users.filter(user_id=actor.pk)) | Exists(item_groups.filter(group_id__in=gids))
    unnamed = ~Exists(item_users) & ~Exists(item_groups) & queue_member_filter(actor)
    excluded = Exists(WorkItem.excluded_users.through.objects.filter(workitem_id=OuterRef("pk"), user_id=actor.pk))
    not_reserved_for_others = Q(reserved_for__isnull=True) | Q(reserved_for=actor.pk)
    return Q(state=State.OFFERED) & not_reserved_for_others & (named | unnamed) & ~excluded


# `may_claim` in SQL over a work-item row `w`, for claim-next's walk. Parameters: %(uid)s the
# user, %(gids)s their group ids (bigint[]). Queue membership is the walk's own: it visits only
# the caller's member queues (`CANDIDATE_SQL_IN_MEMBER_QUEUE`) plus, anywhere, the items that
# name the caller (`CANDIDATE_SQL_NAMED`).
_NOT_EXCLUDED_SQL = """
      AND (w.reserved_for_id IS NULL OR w.reserved_for_id = %(uid)s)
      AND NOT EXISTS (SELECT 1 FROM workitems_workitem_excluded_users e
                      WHERE e.workitem_id = w.id AND e.user_id = %(uid)s)
"""
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
