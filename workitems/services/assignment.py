"""Assignment and pull: offer, assign, claim, claim-next, release, accept, reject, delegate, forward."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.db.models import Value

from config import statements, wsconfig
from directory.roles import roles_of
from distribution import constraints
from workitems import policy, schemas
from workitems.errors import (
    ConstraintViolated,
    FeatureDisabled,
    InvalidTransition,
    NotAllowed,
    NotFound,
    ValidationFailed,
)
from workitems.models import WorkItem
from workitems.selectors import claim_next_candidate_ids, claim_next_lock, claimer_lock, work_item_get_for
from workitems.services._core import Command, execute, push, resolve_user


def _check_pull_on() -> None:
    if not wsconfig.get().assignment.pull:
        raise FeatureDisabled("pull assignment (claim, claim-next) is switched off", toggle="assignment.pull")


@transaction.atomic
def work_item_offer(*, item_id: int, actor=None, expected_version: int | None = None) -> WorkItem:
    """Offer a CREATED item to its candidates (pull)."""
    return execute(action="offer", item_id=item_id, actor=actor, expected_version=expected_version)


def give_to(
    action: str,
    *,
    item_id: int,
    actor,
    user,
    override: bool,
    expected_version: int | None,
    locked_item: WorkItem | None = None,
) -> WorkItem:
    """assign / delegate: the item goes to `user` (a username or a User), who must be an
    active person in its pool (policy.hold_refusal) unless a supervisor overrides; an
    override is audited (`override: true`). `locked_item`: the row already locked by the
    caller's transaction (reassign), so it is not locked and read a second time."""
    target = resolve_user(user)
    audit_data = {"assignee": target.username}
    if override is True:
        audit_data["override"] = True
    return execute(
        action=action,
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        target_user=target,
        args={"override": override},
        transition_kwargs={"user": target},
        audit_data=audit_data,
        locked_item=locked_item,
    )


@transaction.atomic
def work_item_assign(
    *, item_id: int, actor, user, override: bool = False, expected_version: int | None = None
) -> WorkItem:
    """Give a CREATED or OFFERED item to `user` (a supervisor's choice)."""
    return give_to(
        "assign", item_id=item_id, actor=actor, user=user, override=override, expected_version=expected_version
    )


@transaction.atomic
def work_item_claim(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """Take an OFFERED item as `actor`, if it is an eligible candidate."""
    if actor is None:
        raise NotAllowed("the system cannot claim; use assign")
    _check_pull_on()
    return execute(
        action="claim",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        target_user=actor,
        transition_kwargs={"user": actor},
        audit_data={"assignee": actor.username},
    )


def _claimable_queue_ids(actor, claimer) -> list[int] | None:
    """Of the claimer's member queues, those whose lifecycle lets `actor`'s roles claim
    (policy.action_roles) and where it is under capacity_per_user, counting reservations as
    load, so claim-next does not walk items it could not take; None when it is at its
    personal capacity."""
    if not constraints.fits(len(claimer.held_queue_ids) + 1, claimer.candidate.capacity):
        return None
    custom = wsconfig.get().features.lifecycle.custom
    roles = roles_of(actor)
    return sorted(
        qid
        for qid, overrides, cap in claimer.queues
        if roles & policy.lifecycle_action_roles("claim", overrides if custom else None)
        and constraints.fits(claimer.held_in(qid) + 1, cap)
    )


def _claim_next_names(queue, queues) -> list[str] | None:
    """The queues a claim-next names: `queue` (a name or a list of names) or `queues` (a list),
    deduplicated in order; None when it names none (every queue of the caller's)."""
    if queue is not None and queues is not None:
        raise ValidationFailed([{"field": "queues", "message": "give queue or queues, not both"}])
    names = queues if queues is not None else queue
    if names is None:
        return None
    field_name = "queues" if queues is not None else "queue"
    if isinstance(names, str):
        names = [names]
    if (
        not isinstance(names, list)
        or not 0 < len(names) <= schemas.MAX_CANDIDATE_QUEUES
        or not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names)
    ):
        raise ValidationFailed(
            [{"field": field_name, "message": f"a queue name or a list of 1–{schemas.MAX_CANDIDATE_QUEUES} names"}]
        )
    return list(dict.fromkeys(names))


@transaction.atomic
def work_item_claim_next(
    *, actor, queue: str | list[str] | None = None, queues: list[str] | None = None, k: int = 32, rounds: int = 50
) -> WorkItem | None:
    """Claim the best OFFERED item `actor` may take, across its queues or in those named; None
    when there is none. Over all its queues or one named: priority desc, due_at asc, created_at
    asc. Over several named: by score, weight × (priority + minutes waited), of each queue's
    best (selectors._SCORE_SQL), so an old item in a quiet queue is not starved by a stream of
    urgent work in another.

    Statements: the caller's groups; the caller's row, locked (with the named queues' ids), then
    its profile, what it holds and its member queues (selectors.claimer_lock: what it holds
    cannot change while it claims); the walk and the lock in one (selectors.claim_next_lock: an
    index walk per queue, selectors.claim_next_candidate_ids, whose cost does not grow with the
    number of open items, and of its best `k` rows the best nobody holds, FOR UPDATE SKIP
    LOCKED); and the change. Each attempt runs in a savepoint: a row that fails a holding
    constraint (separation of duties, skills) or the lifecycle's roles is released at once by
    the savepoint's rollback, so no caller keeps another from an item it may take.
    """
    if actor is None or not actor.is_authenticated:
        raise NotAllowed("claim-next needs a user")
    _check_pull_on()
    names = _claim_next_names(queue, queues)
    claimer = claimer_lock(actor, queue_names=names)
    only = None
    if names is not None:
        unknown = [n for n in names if n not in claimer.named]
        if unknown:
            raise NotFound(f"queue {unknown[0]!r} not found")
        only = sorted(claimer.named.values())
    scored = only is not None and len(only) > 1
    queue_ids = _claimable_queue_ids(actor, claimer)
    if not queue_ids and not policy.role_allows("claim", None, actor):
        # No lifecycle of the caller's queues grants what the default refuses.
        raise NotAllowed("your roles do not allow claiming work items")
    if queue_ids is None:  # at personal capacity
        return None
    walk = {"actor": actor, "queue_ids": queue_ids, "only_queues": only, "k": k, "scored": scored}
    # Rows taken, locked by others, or failing a check are left out of the next walk.
    passed_over: list[int] = []
    for _ in range(rounds):
        item = None
        try:
            with transaction.atomic():
                item = claim_next_lock(**walk, skip=passed_over)
                if item is not None:
                    return execute(
                        action="claim",
                        item_id=item.pk,
                        actor=actor,
                        expected_version=None,
                        target_user=actor,
                        target_locked=claimer.locked_for(item),
                        transition_kwargs={"user": actor},
                        audit_data={"assignee": actor.username, "via": "claim-next"},
                        locked_item=item,
                        skip=("candidate",),  # the walk selected only items the caller may take
                    )
        except (ConstraintViolated, NotAllowed, InvalidTransition):
            passed_over.append(item.pk)
            continue
        # Every one of the best k is taken or being taken right now: pass them over.
        remaining = claim_next_candidate_ids(**walk, skip=passed_over)
        if not remaining:
            return None
        passed_over.extend(remaining)
    return None


@transaction.atomic
def work_item_release(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """Hand an ASSIGNED item back to its queue (OFFERED); a push queue passes it to someone else."""
    item = work_item_get_for(actor=actor, item_id=item_id, for_update=True)
    previous = item.assignee_id
    item = execute(action="release", item_id=item_id, actor=actor, expected_version=expected_version, locked_item=item)
    return push(item, exclude_ids=[previous] if previous else [])


@transaction.atomic
def work_item_accept(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """The user an item is reserved for takes it (OFFERED → ASSIGNED)."""
    return execute(
        action="accept",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        target_user=actor,
        transition_kwargs={"user": actor},
        audit_data={"assignee": getattr(actor, "username", None)},
    )


@transaction.atomic
def work_item_reject(*, item_id: int, actor, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """The reservee declines: the item moves to the next candidate (never back to them),
    and after all candidates stays OFFERED to its queue."""
    item = execute(
        action="reject",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        audit_data={"reason": reason} if reason else {},
    )
    return push(item, exclude_ids=item.declined_by)


@transaction.atomic
def work_item_delegate(
    *, item_id: int, actor, user, override: bool = False, expected_version: int | None = None
) -> WorkItem:
    """Hand a held item to another user (it becomes ASSIGNED to them)."""
    return give_to(
        "delegate", item_id=item_id, actor=actor, user=user, override=override, expected_version=expected_version
    )


def _forward_targets(usernames: list[str], group_names: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """The ids of the named users and groups, in one statement; ValidationFailed names the
    unknown ones and the inactive accounts (nobody could ever take the item from them)."""
    users = get_user_model().objects.filter(username__in=usernames)
    groups = Group.objects.filter(name__in=group_names)
    parts = []
    if usernames:
        parts.append(users.values_list("id", "username", "is_active", Value("u")))
    if group_names:
        parts.append(groups.values_list("id", "name", Value(True), Value("g")))
    query = parts[0].union(*parts[1:], all=True)
    found: dict[str, dict[str, int]] = {"u": {}, "g": {}}
    inactive = []
    for pk, name, active, kind in query:
        found[kind][name] = pk
        if not active:
            inactive.append(name)
    errors = []
    for field_name, names, kind in (("users", usernames, "u"), ("groups", group_names, "g")):
        unknown = [n for n in names if n not in found[kind]]
        if unknown:
            errors.append({"field": field_name, "message": f"unknown {field_name}: {', '.join(unknown)}"})
    if inactive:
        errors.append({"field": "users", "message": f"not active: {', '.join(inactive)}"})
    if errors:
        raise ValidationFailed(errors)
    return found["u"], found["g"]


def _replace_list(batch: statements.Batch, item: WorkItem, name: str, ids: list[int]) -> None:
    """The item's list `name` becomes `ids`, in the change's statement: the rows not kept
    deleted, the new ones inserted (ON CONFLICT DO NOTHING: a row kept is neither deleted nor
    inserted, so the two writes of one statement never meet on a row)."""
    through = getattr(WorkItem, name).through
    if connection.vendor != "postgresql":  # the embedded SQLite default: the ORM, before the batch
        getattr(item, name).set(ids)
        return
    column = through._meta.get_field("user" if name == "candidate_users" else "group").column
    table = through._meta.db_table
    batch.add(
        f"DELETE FROM {table} WHERE workitem_id = %s AND NOT ({column} = ANY(%s::bigint[]))",  # noqa: S608 - model names
        [item.pk, ids],
    )
    batch.add(
        f"INSERT INTO {table} (workitem_id, {column}) SELECT %s, unnest(%s::bigint[]) ON CONFLICT DO NOTHING",  # noqa: S608
        [item.pk, ids],
    )


@transaction.atomic
def work_item_forward(
    *,
    item_id: int,
    actor,
    users: list[str] | None = None,
    groups: list[str] | None = None,
    expected_version: int | None = None,
) -> WorkItem:
    """Offer an OFFERED or ASSIGNED item to other candidates instead (WS-HumanTask's forward:
    potential ownership moves): its candidate users and groups become `users` and `groups`,
    whoever held it or had it reserved lets it go, and distribution runs again as on create
    (a push queue assigns it to one of them under the same constraints; a pull queue offers
    it to them). The assignee or a supervisor; the targets must exist, their accounts be
    active, and none be excluded from the item."""
    holder: list[int] = []
    targets: dict[str, dict[str, int]] = {}
    audit_data: dict = {}

    def check(cmd: Command) -> None:
        # After the lifecycle and the caller's roles (409, 403 come first), as any input.
        usernames, group_names = schemas.forward_targets(users, groups)
        targets["users"], targets["groups"] = _forward_targets(usernames, group_names)
        audit_data.update(users=usernames, groups=group_names)
        excluded = set(getattr(cmd.item, "list_names", {}).get("excluded_users") or [])
        if connection.vendor != "postgresql":  # the lists are not read with the row there
            excluded = set(cmd.item.excluded_users.values_list("username", flat=True))
        refused = [u for u in usernames if u in excluded]
        if refused:
            raise ConstraintViolated(f"work item {cmd.item.pk} excludes {', '.join(refused)}", constraint="excluded")
        if cmd.item.assignee_id:
            holder.append(cmd.item.assignee_id)

    def write_lists(cmd: Command, batch: statements.Batch) -> None:
        _replace_list(batch, cmd.item, "candidate_users", list(targets["users"].values()))
        _replace_list(batch, cmd.item, "candidate_groups", list(targets["groups"].values()))

    item = execute(
        action="forward",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        audit_data=audit_data,
        prepare=check,
        writes=write_lists,
    )
    names = getattr(item, "list_names", None)
    if names is not None:
        item.list_names = {**names, "candidate_users": audit_data["users"], "candidate_groups": audit_data["groups"]}
    return push(item, exclude_ids=holder)
