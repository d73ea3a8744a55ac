"""Commands on work items: the one way a work item changes.

Every public function here is one command of DESIGN.md's lifecycle table. Each
runs in one transaction that (1) locks the item row, (2) checks the caller's
expected version, (3) runs the command's validation pipeline, (4) fires the
django-fsm transition, (5) bumps `version` and saves the changed fields, and
(6) writes the audit record and the outbox event. Views, admin actions,
consumers, Celery jobs and the console call these functions and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.services import audit_record
from config import wsconfig
from config.observability import (
    CLAIM_CONFLICTS_TOTAL,
    WORKITEM_COMPLETE_LATENCY_MS,
    WORKITEM_CREATE_LATENCY_MS,
    WORKITEM_TRANSITIONS_TOTAL,
)
from directory.roles import ADMIN, SERVICE, SUPERVISOR, WORKER, roles_of
from distribution import constraints
from distribution.engine import route_item
from events.outbox import outbox_enqueue
from workitems.errors import (
    AlreadyClaimed,
    ConstraintViolated,
    InvalidTransition,
    NotAllowed,
    NotFound,
    StaleVersion,
    ValidationFailed,
)
from workitems.models import HELD_STATES, STRATEGY_CHOICES, Queue, State, WorkItem
from workitems.selectors import claim_next_candidate_ids, member_queue_ids, work_item_get_for
from workitems.snapshots import work_item_snapshot

User = get_user_model()

SYSTEM = "system"  # the pseudo-role of actor=None: Celery jobs, distribution, the SLA scan

EVENT_NAMES = {
    "create": "created",
    "offer": "offered",
    "assign": "assigned",
    "claim": "claimed",
    "release": "released",
    "start": "started",
    "complete": "completed",
    "fail": "failed",
    "suspend": "suspended",
    "resume": "resumed",
    "delegate": "delegated",
    "escalate": "escalated",
    "cancel": "cancelled",
    "set_sub_status": "sub_status_changed",
    "reserve": "reserved",
    "accept": "accepted",
    "reject": "rejected",
}

# Who may fire each action by default (DESIGN.md's "who" column). A lifecycle's
# `action_roles` replaces an entry; the system (actor=None) is always allowed.
DEFAULT_ACTION_ROLES: dict[str, frozenset[str]] = {
    "create": frozenset({ADMIN, SUPERVISOR, SERVICE}),
    "offer": frozenset({ADMIN, SUPERVISOR}),
    "assign": frozenset({ADMIN, SUPERVISOR}),
    "claim": frozenset({WORKER, SUPERVISOR, ADMIN}),
    "release": frozenset({WORKER, SUPERVISOR, ADMIN}),
    "start": frozenset({WORKER, SUPERVISOR, ADMIN}),
    "complete": frozenset({WORKER, SUPERVISOR, ADMIN}),
    "fail": frozenset({WORKER, SUPERVISOR, ADMIN}),
    "suspend": frozenset({SUPERVISOR, ADMIN}),
    "resume": frozenset({SUPERVISOR, ADMIN}),
    "delegate": frozenset({WORKER, SUPERVISOR, ADMIN}),
    "escalate": frozenset({SUPERVISOR, ADMIN}),
    "cancel": frozenset({SERVICE, SUPERVISOR, ADMIN}),
    "set_sub_status": frozenset({WORKER, SUPERVISOR, ADMIN}),
    "reserve": frozenset({SUPERVISOR, ADMIN}),
    "accept": frozenset({WORKER, SUPERVISOR, ADMIN}),
    "reject": frozenset({WORKER, SUPERVISOR, ADMIN}),
}

# Beyond the role: the actor's relation to the item. Supervisors and admins
# stand in for the assignee or creator where the table says "or a supervisor".
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

MAX_REASON = 2000


# --- the command and its validation pipeline ------------------------------------------


@dataclass
class Command:
    """One command in flight: what the validators look at."""

    action: str
    item: WorkItem
    actor: Any  # a User, or None for the system
    target_user: Any = None  # the user who will hold the item (claim, assign, delegate)
    args: dict[str, Any] = field(default_factory=dict)


def _roles_for(actor) -> frozenset[str]:
    return frozenset({SYSTEM}) if actor is None else roles_of(actor)


def _role_allows(action: str, item: WorkItem, actor) -> bool:
    if actor is None:
        return True
    override = (item.lifecycle.action_roles or {}).get(action)
    allowed = frozenset(override) if override is not None else DEFAULT_ACTION_ROLES[action]
    return bool(roles_of(actor) & allowed)


def _relation_allows(action: str, item: WorkItem, actor) -> bool:
    relation = RELATIONS.get(action)
    if relation is None or actor is None:
        return True
    supervisor = bool(roles_of(actor) & {SUPERVISOR, ADMIN})
    if relation == ASSIGNEE:
        return item.assignee_id == actor.pk
    if relation == RESERVEE:
        return item.reserved_for_id == actor.pk
    if relation == ASSIGNEE_OR_SUPERVISOR:
        return supervisor or item.assignee_id == actor.pk
    return supervisor or (item.created_by_id is not None and item.created_by_id == actor.pk)


def allowed_actions_for(item: WorkItem, actor) -> list[str]:
    """What `actor` may do to `item` now: the lifecycle's available actions that the
    actor's roles and relation to the item permit (constraints on a target user aside).
    Only actions a caller can fire are listed (`reserve` is distribution's own step)."""
    return [
        a
        for a in item.available_actions()
        if a in COMMANDS and _role_allows(a, item, actor) and _relation_allows(a, item, actor)
    ]


def validate_lifecycle_allows(cmd: Command) -> None:
    item = cmd.item
    if cmd.action in item.available_actions():
        return
    allowed = allowed_actions_for(item, cmd.actor)
    if cmd.action == "claim" and item.state in (State.ASSIGNED, State.IN_PROGRESS):
        CLAIM_CONFLICTS_TOTAL.inc()
        raise AlreadyClaimed(
            f"work item {item.pk} is already claimed", action="claim", state=item.state, allowed_actions=allowed
        )
    raise InvalidTransition(
        f"cannot {cmd.action} work item {item.pk} in state {item.state}",
        action=cmd.action,
        state=item.state,
        allowed_actions=allowed,
    )


def validate_actor_allowed(cmd: Command) -> None:
    if not _role_allows(cmd.action, cmd.item, cmd.actor):
        raise NotAllowed(f"your roles do not allow {cmd.action} on work item {cmd.item.pk}")
    if not _relation_allows(cmd.action, cmd.item, cmd.actor):
        who = {
            ASSIGNEE: "the assignee",
            ASSIGNEE_OR_SUPERVISOR: "the assignee or a supervisor",
            RESERVEE: "the user it is reserved for",
        }.get(RELATIONS[cmd.action], "the creating client or a supervisor")
        raise NotAllowed(f"only {who} may {cmd.action} work item {cmd.item.pk}")


def validate_queue_active(cmd: Command) -> None:
    if not cmd.item.queue.active:
        raise ValidationFailed([{"field": "queue", "message": f"queue {cmd.item.queue.name} is not active"}])


def validate_input_shape(cmd: Command) -> None:
    args = cmd.args
    if "reason" in args:
        reason = args["reason"]
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise ValidationFailed([{"field": "reason", "message": f"must be a string of at most {MAX_REASON} chars"}])
    nul = nul_errors(args)
    if nul:
        raise ValidationFailed(nul)
    if cmd.action == "complete":
        result = args.get("result")
        if not isinstance(result, dict):
            raise ValidationFailed([{"field": "result", "message": "must be a JSON object"}])
        schema = cmd.item.lifecycle.result_schema
        if schema:
            errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(result), key=lambda e: e.path)
            if errors:
                raise ValidationFailed(
                    [{"field": _dotted("result", e.absolute_path), "message": e.message} for e in errors]
                )
    if cmd.action == "set_sub_status":
        name = args.get("sub_status")
        lifecycle = cmd.item.lifecycle
        if not isinstance(name, str) or not lifecycle.sub_status_move_allowed(cmd.item.sub_status, name):
            allowed = (lifecycle.sub_statuses or {}).get("moves", {}).get(cmd.item.sub_status, [])
            raise ValidationFailed(
                [{"field": "sub_status", "message": f"cannot move from {cmd.item.sub_status!r}; allowed: {allowed}"}]
            )
    if cmd.action == "delegate" and cmd.target_user is not None and cmd.target_user.pk == cmd.item.assignee_id:
        raise ValidationFailed([{"field": "user", "message": "the item is already assigned to this user"}])


def validate_candidate(cmd: Command) -> None:
    """Claiming needs candidacy (named on the item, a queue group member, or a valid role holder);
    push paths (assign, delegate) may go past the candidate list, as a supervisor decides."""
    if cmd.action == "claim":
        constraints.check_candidate(cmd.target_user, cmd.item)


def validate_reservation(cmd: Command) -> None:
    """A reserved item is only for its reservee: others cannot claim it; only they accept or reject."""
    item = cmd.item
    if item.reserved_for_id is None or cmd.actor is None:
        return
    if cmd.action == "claim" and item.reserved_for_id != cmd.actor.pk:
        CLAIM_CONFLICTS_TOTAL.inc()
        raise AlreadyClaimed(
            f"work item {item.pk} is reserved for another user",
            action="claim",
            state=item.state,
            allowed_actions=allowed_actions_for(item, cmd.actor),
        )


def validate_holding_constraints(cmd: Command) -> None:
    """Active, under capacity, skilled, not excluded, separation of duties (distribution.constraints)."""
    if cmd.target_user is not None:
        constraints.check_can_hold(cmd.target_user, cmd.item)


VALIDATORS: dict[str, Callable[[Command], None]] = {
    "lifecycle_allows": validate_lifecycle_allows,
    "actor_allowed": validate_actor_allowed,
    "queue_active": validate_queue_active,
    "input_shape": validate_input_shape,
    "reservation": validate_reservation,
    "candidate": validate_candidate,
    "constraints": validate_holding_constraints,
}

# The order is the order of the answers a caller gets: a transition the state
# does not allow (409) before a role that may not (403), before bad input (400),
# before a constraint on the person who would hold the item.
_BASE = ("lifecycle_allows", "actor_allowed", "input_shape")
_HOLDING = ("candidate", "constraints")
PIPELINES: dict[str, tuple[str, ...]] = {
    "offer": (*_BASE, "queue_active"),
    "assign": (*_BASE, "queue_active", *_HOLDING),
    "claim": (*_BASE, "queue_active", "reservation", *_HOLDING),
    "accept": (*_BASE, "constraints"),
    "reject": _BASE,
    "reserve": _BASE,
    "release": _BASE,
    "start": _BASE,
    "complete": _BASE,
    "fail": _BASE,
    "suspend": _BASE,
    "resume": _BASE,
    "delegate": (*_BASE, *_HOLDING),
    "escalate": _BASE,
    "cancel": _BASE,
    "set_sub_status": _BASE,
}


def run_pipeline(cmd: Command, names: Iterable[str]) -> None:
    for name in names:
        VALIDATORS[name](cmd)


# --- the shared execution of a command --------------------------------------------------


def _dotted(prefix: str, path: Iterable[Any]) -> str:
    parts = [prefix] if prefix else []
    for p in path:
        if isinstance(p, int):
            parts[-1:] = [f"{parts[-1]}[{p}]"] if parts else [f"[{p}]"]
        else:
            parts.append(str(p))
    return ".".join(parts)


def check_version(item: WorkItem, expected_version: int | None) -> None:
    if expected_version is not None and item.version != expected_version:
        raise StaleVersion(
            f"work item {item.pk} is at version {item.version}, not {expected_version}",
            expected=expected_version,
            current=item.version,
        )


def _field_values(item: WorkItem) -> dict[str, Any]:
    return {f.attname: getattr(item, f.attname) for f in item._meta.concrete_fields}


def _enqueue_event(
    *, item: WorkItem, name: str, action: str, actor, from_state: str, data: dict, correlation_id: str = ""
) -> None:
    outbox_enqueue(
        event_type=f"workitem.{name}.v1",
        aggregate_id=item.pk,
        sequence=item.event_seq,
        correlation_id=correlation_id or item.correlation_id,
        occurred_at=item.updated_at,
        payload={
            "work_item": work_item_snapshot(item),
            "transition": {
                "action": action,
                "from_state": from_state,
                "to_state": item.state,
                "actor": getattr(actor, "username", None),
                **data,
            },
        },
    )


def _record_change(
    *, item: WorkItem, action: str, actor, from_state: str, data: dict, correlation_id: str = ""
) -> None:
    """Audit record + outbox event for one change, in the caller's transaction.
    The caller has already counted the event in `item.event_seq` and saved it."""
    audit_record(
        stream=f"workitem:{item.pk}",
        work_item=item,
        action=action,
        actor=actor,
        from_state=from_state,
        to_state=item.state,
        data={"version": item.version, **data},
        correlation_id=correlation_id or item.correlation_id,
    )
    _enqueue_event(
        item=item,
        name=EVENT_NAMES[action],
        action=action,
        actor=actor,
        from_state=from_state,
        data=data,
        correlation_id=correlation_id,
    )
    WORKITEM_TRANSITIONS_TOTAL.labels(action=action).inc()


def _emit_unassigned(item: WorkItem, route) -> None:
    """`workitem.unassigned.v1`: a push strategy found nobody; the item stays OFFERED.
    Not a change of the item (its version stays), so it has an event but no audit record."""
    item.event_seq += 1
    WorkItem.objects.filter(pk=item.pk).update(event_seq=item.event_seq)
    _enqueue_event(
        item=item,
        name="unassigned",
        action="unassigned",
        actor=None,
        from_state=item.state,
        data={"strategy": route.strategy, "reason": route.reason},
    )


def _touch_last_assigned(user_id: int) -> None:
    """For longest-idle: when this user last received an item."""
    from directory.models import Profile

    now = timezone.now()
    if not Profile.objects.filter(user_id=user_id).update(last_assigned_at=now):
        Profile.objects.get_or_create(user_id=user_id, defaults={"last_assigned_at": now})


def _execute(
    *,
    action: str,
    item_id: int,
    actor,
    expected_version: int | None,
    target_user=None,
    args: dict[str, Any] | None = None,
    transition_kwargs: dict[str, Any] | None = None,
    audit_data: dict[str, Any] | None = None,
    prepare: Callable[[Command], None] | None = None,
    locked_item: WorkItem | None = None,
    skip: tuple[str, ...] = (),
) -> WorkItem:
    """Lock, check, validate, transition, save, audit, enqueue: the body of every command."""
    item = locked_item or work_item_get_for(actor=actor, item_id=item_id, for_update=True)
    try:
        check_version(item, expected_version)
    except StaleVersion:
        if action == "claim":
            CLAIM_CONFLICTS_TOTAL.inc()
        raise
    cmd = Command(action=action, item=item, actor=actor, target_user=target_user, args=args or {})
    run_pipeline(cmd, [name for name in PIPELINES[action] if name not in skip])
    if prepare is not None:
        prepare(cmd)
    before = _field_values(item)
    from_state = item.state
    getattr(item, action)(**(transition_kwargs or {}))
    item.version += 1
    item.event_seq += 1
    item.updated_at = timezone.now()
    after = _field_values(item)
    item.save(update_fields=[name for name, value in after.items() if before[name] != value])
    if item.assignee_id and item.assignee_id != before["assignee_id"]:
        _touch_last_assigned(item.assignee_id)
    elif item.reserved_for_id and item.reserved_for_id != before["reserved_for_id"]:
        _touch_last_assigned(item.reserved_for_id)  # a reservation is an assignment offered
    _record_change(item=item, action=action, actor=actor, from_state=from_state, data=audit_data or {})
    return item


def _push(item: WorkItem, *, exclude_ids=()) -> WorkItem:
    """Send an OFFERED item through distribution again (after release, reject, a lapsed
    reservation or an absence): its strategy may assign or reserve it to someone else."""
    if item.state != State.OFFERED or item.reserved_for_id:
        return item
    route = route_item(item=item, exclude_ids=exclude_ids)
    if route.action == "offer":
        if route.unassigned:
            _emit_unassigned(item, route)
        return item
    return _apply_push(item, route)


def _apply_push(item: WorkItem, route) -> WorkItem:
    data = {"assignee": route.user.username, "strategy": route.strategy}
    if route.on_behalf_of:
        data["on_behalf_of"] = route.on_behalf_of
    if route.action == "reserve":
        until = timezone.now() + item.queue.reservation_timeout
        return _execute(
            action="reserve",
            item_id=item.pk,
            actor=None,
            expected_version=None,
            transition_kwargs={"user": route.user, "until": until},
            audit_data={**data, "reserved_until": until.isoformat()},
            locked_item=item,
        )
    return _execute(
        action="assign",
        item_id=item.pk,
        actor=None,
        expected_version=None,
        target_user=route.user,
        transition_kwargs={"user": route.user},
        audit_data=data,
        locked_item=item,
    )


def _resolve_user(user, field_name: str = "user"):
    """A User from an instance or a username; ValidationFailed if there is none."""
    if isinstance(user, User):
        return user
    if isinstance(user, str) and user:
        found = User.objects.filter(username=user).first()
        if found is not None:
            return found
        raise ValidationFailed([{"field": field_name, "message": f"unknown user {user!r}"}])
    raise ValidationFailed([{"field": field_name, "message": "a username is required"}])


# --- the commands -------------------------------------------------------------------------


@transaction.atomic
def work_item_offer(*, item_id: int, actor=None, expected_version: int | None = None) -> WorkItem:
    """Offer a CREATED item to its candidates (pull)."""
    return _execute(action="offer", item_id=item_id, actor=actor, expected_version=expected_version)


@transaction.atomic
def work_item_assign(*, item_id: int, actor, user, expected_version: int | None = None) -> WorkItem:
    """Give a CREATED or OFFERED item to `user` (push, or a supervisor's choice)."""
    target = _resolve_user(user)
    return _execute(
        action="assign",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        target_user=target,
        transition_kwargs={"user": target},
        audit_data={"assignee": target.username},
    )


@transaction.atomic
def work_item_claim(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """Take an OFFERED item as `actor`, if it is an eligible candidate."""
    if actor is None:
        raise NotAllowed("the system cannot claim; use assign")
    return _execute(
        action="claim",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        target_user=actor,
        transition_kwargs={"user": actor},
        audit_data={"assignee": actor.username},
    )


def _full_queue_ids(actor) -> tuple[bool, set[int]]:
    """(at personal capacity?, queues where `actor` is at capacity_per_user), counting
    reservations as load, so claim-next does not walk items it could not take."""
    from directory.models import Profile

    held = dict(
        WorkItem.objects.filter(
            Q(assignee_id=actor.pk, state__in=HELD_STATES) | Q(reserved_for_id=actor.pk, state=State.OFFERED)
        )
        .values_list("queue_id")
        .annotate(n=Count("id"))
    )
    personal = Profile.objects.filter(user_id=actor.pk).values_list("capacity", flat=True).first()
    if personal is not None and sum(held.values()) >= personal:
        return True, set()
    caps = dict(
        Queue.objects.filter(pk__in=list(held), capacity_per_user__isnull=False).values_list("id", "capacity_per_user")
    )
    return False, {qid for qid, n in held.items() if qid in caps and n >= caps[qid]}


@transaction.atomic
def work_item_claim_next(*, actor, queue: str | None = None, k: int = 32, rounds: int = 50) -> WorkItem | None:
    """Claim the best OFFERED item `actor` may take (priority desc, due_at asc, created_at asc),
    across its queues or in the one named; None when there is none.

    The candidates come from an index walk per queue (selectors.claim_next_candidate_ids:
    its cost does not grow with the number of open items), without locks. They are then
    locked one at a time with FOR UPDATE SKIP LOCKED, each in a savepoint: a row another
    caller holds is skipped without waiting, and a row that fails a holding constraint
    (separation of duties, skills) is released at once by the savepoint's rollback, so
    no caller keeps another from an item it may take.
    """
    if actor is None or not actor.is_authenticated:
        raise NotAllowed("claim-next needs a user")
    if not roles_of(actor) & DEFAULT_ACTION_ROLES["claim"]:
        raise NotAllowed("your roles do not allow claiming work items")
    only = None
    if queue is not None:
        only = Queue.objects.filter(name=queue).values_list("id", flat=True).first()
        if only is None:
            raise NotFound(f"queue {queue!r} not found")
    at_capacity, full = _full_queue_ids(actor)
    if at_capacity:
        return None
    queue_ids = [q for q in member_queue_ids(actor, only_queue=only) if q not in full]
    # Each round walks the index for the next `k` candidates, then locks the best of them
    # that nobody else holds in ONE statement (FOR UPDATE SKIP LOCKED over those ids), so a
    # crowd of callers sharing the same top rows does not pay a round trip per locked row.
    # Rows taken, locked by others, or failing a constraint are left out of the next walk.
    passed_over: list[int] = []
    order = (F("priority").desc(), F("due_at").asc(nulls_last=True), "created_at", "id")
    for _ in range(rounds):
        remaining = claim_next_candidate_ids(actor=actor, queue_ids=queue_ids, only_queue=only, k=k, skip=passed_over)
        if not remaining:
            return None
        while remaining:
            item = None
            try:
                with transaction.atomic():
                    item = (
                        WorkItem.objects.select_related("queue__lifecycle", "assignee", "created_by")
                        .select_for_update(skip_locked=True, of=("self",))
                        .filter(pk__in=remaining, state=State.OFFERED)
                        .order_by(*order)
                        .first()
                    )
                    if item is None:  # every one of them is taken or being taken right now
                        break
                    return _execute(
                        action="claim",
                        item_id=item.pk,
                        actor=actor,
                        expected_version=None,
                        target_user=actor,
                        transition_kwargs={"user": actor},
                        audit_data={"assignee": actor.username, "via": "claim-next"},
                        locked_item=item,
                        skip=("candidate",),  # the walk selected only items the caller may take
                    )
            except (ConstraintViolated, NotAllowed, InvalidTransition):
                remaining.remove(item.pk)
                passed_over.append(item.pk)
        passed_over.extend(remaining)
    return None


@transaction.atomic
def work_item_release(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """Hand an ASSIGNED item back to its queue (OFFERED); a push queue passes it to someone else."""
    item = work_item_get_for(actor=actor, item_id=item_id, for_update=True)
    previous = item.assignee_id
    item = _execute(action="release", item_id=item_id, actor=actor, expected_version=expected_version, locked_item=item)
    return _push(item, exclude_ids=[previous] if previous else [])


@transaction.atomic
def work_item_accept(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """The user an item is reserved for takes it (OFFERED → ASSIGNED)."""
    return _execute(
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
    item = _execute(
        action="reject",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        audit_data={"reason": reason} if reason else {},
    )
    return _push(item, exclude_ids=item.declined_by)


@transaction.atomic
def work_item_expire_reservation(*, item_id: int) -> WorkItem | None:
    """The reservation lapsed (the timeout job): treat it as a decline by the reservee."""
    item = work_item_get_for(actor=None, item_id=item_id, for_update=True)
    if item.reserved_for_id is None or item.reserved_until is None or item.reserved_until > timezone.now():
        return None  # accepted, rejected or renewed meanwhile
    lapsed = item.reserved_for.username
    item = _execute(
        action="reject",
        item_id=item_id,
        actor=None,
        expected_version=None,
        audit_data={"reason": "reservation timed out", "reservee": lapsed},
        locked_item=item,
    )
    return _push(item, exclude_ids=item.declined_by)


@transaction.atomic
def work_item_hand_over_for_absence(*, item_id: int, user, reason: str = "out of office") -> WorkItem:
    """An item held by `user`, who is now absent or deactivated, moves on: to their delegate
    when the delegate may hold it (and comes back on return if untouched), else back
    through distribution."""
    from directory.models import Profile

    item = work_item_get_for(actor=None, item_id=item_id, for_update=True)
    if item.assignee_id != user.pk or item.state not in (State.ASSIGNED, State.IN_PROGRESS):
        return item
    profile = Profile.objects.filter(user_id=user.pk).select_related("delegate").first()
    delegate = profile.delegate if profile is not None else None
    if delegate is not None and delegate.is_active:
        # A deactivated user is not coming back: the delegate keeps the item.
        owner = user if user.is_active else None
        data = {"assignee": delegate.username, "reason": reason}
        if owner is not None:
            data["return_to"] = owner.username
        try:
            with transaction.atomic():
                return _execute(
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
            item = work_item_get_for(actor=None, item_id=item_id, for_update=True)
    if item.state == State.IN_PROGRESS:
        # The lifecycle has no way from IN_PROGRESS back to the queue, and nobody may take
        # it over: it is suspended (still showing its owner) for a supervisor to decide.
        return _execute(
            action="suspend",
            item_id=item_id,
            actor=None,
            expected_version=None,
            args={"reason": reason},
            audit_data={"reason": f"{reason}; no delegate could take it"},
            locked_item=item,
        )
    item = _execute(
        action="release",
        item_id=item_id,
        actor=None,
        expected_version=None,
        audit_data={"reason": reason},
        locked_item=item,
    )
    return _push(item, exclude_ids=[user.pk])


@transaction.atomic
def work_item_return_to_owner(*, item_id: int) -> WorkItem | None:
    """Give an item moved away during an absence back to its owner, if nothing happened to it since."""
    item = work_item_get_for(actor=None, item_id=item_id, for_update=True)
    owner = item.return_to
    if owner is None or item.version != item.return_version or item.state != State.ASSIGNED:
        return None
    return _execute(
        action="delegate",
        item_id=item_id,
        actor=None,
        expected_version=None,
        target_user=owner,
        transition_kwargs={"user": owner},
        audit_data={"assignee": owner.username, "reason": "owner returned"},
        locked_item=item,
    )


@transaction.atomic
def work_item_start(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """The assignee starts work (ASSIGNED → IN_PROGRESS)."""
    return _execute(action="start", item_id=item_id, actor=actor, expected_version=expected_version, target_user=actor)


@transaction.atomic
def work_item_complete(*, item_id: int, actor, result: Any = None, expected_version: int | None = None) -> WorkItem:
    """The assignee completes the item with `result` (checked against the lifecycle's schema)."""
    t0 = time.perf_counter()
    result = {} if result is None else result
    item = _execute(
        action="complete",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        target_user=actor,
        args={"result": result},
        transition_kwargs={"result": result},
    )
    WORKITEM_COMPLETE_LATENCY_MS.observe((time.perf_counter() - t0) * 1000)
    return item


@transaction.atomic
def work_item_fail(*, item_id: int, actor, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """The assignee reports that the work cannot be done."""
    return _execute(
        action="fail",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        transition_kwargs={"reason": reason},
        audit_data={"reason": reason},
    )


@transaction.atomic
def work_item_suspend(*, item_id: int, actor, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """Put an open item on hold; resume returns it to the state it left."""
    return _execute(
        action="suspend",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        audit_data={"reason": reason} if reason else {},
    )


@transaction.atomic
def work_item_resume(*, item_id: int, actor, expected_version: int | None = None) -> WorkItem:
    """Take a SUSPENDED item back to the state it was suspended from."""
    return _execute(action="resume", item_id=item_id, actor=actor, expected_version=expected_version)


@transaction.atomic
def work_item_delegate(*, item_id: int, actor, user, expected_version: int | None = None) -> WorkItem:
    """Hand a held item to another user (it becomes ASSIGNED to them)."""
    target = _resolve_user(user)
    return _execute(
        action="delegate",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        target_user=target,
        transition_kwargs={"user": target},
        audit_data={"assignee": target.username},
    )


@transaction.atomic
def work_item_escalate(*, item_id: int, actor=None, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """Raise the escalation level; an item nobody holds moves to the queue's escalation queue."""
    audit_data: dict[str, Any] = {"reason": reason} if reason else {}
    transition_kwargs: dict[str, Any] = {}

    def reroute(cmd: Command) -> None:
        queue = cmd.item.queue
        if queue.escalation_queue_id and cmd.item.state in (State.CREATED, State.OFFERED):
            target = Queue.objects.get(pk=queue.escalation_queue_id)
            transition_kwargs["queue"] = target
            audit_data.update(from_queue=queue.name, to_queue=target.name)

    return _execute(
        action="escalate",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        transition_kwargs=transition_kwargs,
        audit_data=audit_data,
        prepare=reroute,
    )


@transaction.atomic
def work_item_cancel(*, item_id: int, actor, reason: str = "", expected_version: int | None = None) -> WorkItem:
    """Withdraw an open item (the creating client or a supervisor)."""
    return _execute(
        action="cancel",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"reason": reason},
        transition_kwargs={"reason": reason},
        audit_data={"reason": reason} if reason else {},
    )


@transaction.atomic
def work_item_set_sub_status(*, item_id: int, actor, sub_status: str, expected_version: int | None = None) -> WorkItem:
    """Move an IN_PROGRESS item between the lifecycle's named sub-statuses."""
    return _execute(
        action="set_sub_status",
        item_id=item_id,
        actor=actor,
        expected_version=expected_version,
        args={"sub_status": sub_status},
        transition_kwargs={"name": sub_status},
        audit_data={"sub_status": sub_status},
    )


COMMANDS: dict[str, Callable[..., WorkItem]] = {
    "offer": work_item_offer,
    "assign": work_item_assign,
    "claim": work_item_claim,
    "release": work_item_release,
    "start": work_item_start,
    "complete": work_item_complete,
    "fail": work_item_fail,
    "suspend": work_item_suspend,
    "resume": work_item_resume,
    "delegate": work_item_delegate,
    "escalate": work_item_escalate,
    "cancel": work_item_cancel,
    "set_sub_status": work_item_set_sub_status,
    "accept": work_item_accept,
    "reject": work_item_reject,
}


# --- create ---------------------------------------------------------------------------------

_STR = {"type": "string"}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 150}, "maxItems": 1000}
_OPT_STR = {"type": ["string", "null"]}
CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["workflow_id", "task_name", "queue"],
    "additionalProperties": False,
    "properties": {
        "workflow_id": {"type": "string", "minLength": 1, "maxLength": 200},
        "run_id": {"type": "string", "maxLength": 200},
        "task_name": {"type": "string", "minLength": 1, "maxLength": 200},
        "title": {"type": "string", "maxLength": 500},
        "description": {"type": "string", "maxLength": 100_000},
        "queue": {"type": "string", "minLength": 1, "maxLength": 100},
        "priority": {"type": "integer", "minimum": 0, "maximum": 100},
        "due_at": _OPT_STR,
        "follow_up_at": _OPT_STR,
        "context_data": {"type": "object"},
        "candidate_users": _NAMES,
        "candidate_groups": _NAMES,
        "excluded_users": _NAMES,
        "required_skills": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 100}},
        "sod_key": {"type": "string", "maxLength": 100},
        "assignee": _OPT_STR,
        "strategy": {"enum": [c[0] for c in STRATEGY_CHOICES]},
        "callback_url": {"type": "string", "maxLength": 1000},
        "correlation_id": {"type": "string", "maxLength": 200},
    },
}
READ_ONLY_FIELDS = frozenset(
    {
        "id",
        "state",
        "sub_status",
        "version",
        "escalation_level",
        "created_at",
        "updated_at",
        "assigned_at",
        "started_at",
        "completed_at",
        "result",
        "allowed_actions",
    }
)
_create_validator = jsonschema.Draft202012Validator(CREATE_SCHEMA)
_url_validator = URLValidator(schemes=["http", "https"])


def nul_errors(data: Any, prefix: str = "") -> list[dict[str, str]]:
    """NUL characters anywhere in a JSON value (PostgreSQL stores none, in text or jsonb)."""
    out: list[dict[str, str]] = []
    if isinstance(data, str):
        if "\x00" in data:
            out.append({"field": prefix or "body", "message": "must not contain NUL (\\u0000) characters"})
    elif isinstance(data, dict):
        for key, value in data.items():
            field = _dotted(prefix, [str(key).replace("\x00", "\\u0000")])
            if "\x00" in str(key):
                out.append({"field": field, "message": "keys must not contain NUL (\\u0000) characters"})
            out.extend(nul_errors(value, field))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out.extend(nul_errors(value, f"{prefix or 'body'}[{i}]"))
    return out


def _shape_errors(data: Any, prefix: str = "") -> list[dict[str, str]]:
    if not isinstance(data, dict):
        return [{"field": prefix or "body", "message": "must be a JSON object"}]
    nul = nul_errors(data, prefix)
    if nul:
        return nul
    out = []
    for err in sorted(_create_validator.iter_errors(data), key=lambda e: (list(e.path), e.message)):
        if err.validator == "required":
            missing = err.message.split("'")[1]
            out.append({"field": _dotted(prefix, [missing]), "message": "this field is required"})
        elif err.validator == "additionalProperties":
            for extra in sorted(set(err.instance) - set(CREATE_SCHEMA["properties"])):
                why = "read-only field" if extra in READ_ONLY_FIELDS else "unknown field"
                out.append({"field": _dotted(prefix, [extra]), "message": why})
        else:
            out.append({"field": _dotted(prefix, err.absolute_path) or prefix, "message": err.message})
    return out


def _parse_time(data: dict, name: str, prefix: str, errors: list) -> Any:
    raw = data.get(name)
    if raw is None:
        return None
    value = parse_datetime(raw) if isinstance(raw, str) else None
    if value is None:
        errors.append({"field": _dotted(prefix, [name]), "message": "must be an ISO 8601 date-time"})
    elif value.tzinfo is None:
        errors.append({"field": _dotted(prefix, [name]), "message": "must include a time zone"})
    else:
        return value
    return None


@dataclass
class _CreateLookups:
    """Names resolved once for a whole create or bulk create."""

    queues: dict[str, Queue]
    users: dict[str, Any]
    groups: dict[str, Group]


def _lookups_for(bodies: list[dict]) -> _CreateLookups:
    queue_names, usernames, group_names = set(), set(), set()
    for body in bodies:
        queue_names.add(body["queue"])
        usernames.update(body.get("candidate_users", []), body.get("excluded_users", []))
        if body.get("assignee"):
            usernames.add(body["assignee"])
        group_names.update(body.get("candidate_groups", []))
    queues = {q.name: q for q in Queue.objects.select_related("lifecycle").filter(name__in=queue_names)}
    users = {u.username: u for u in User.objects.filter(username__in=usernames)}
    groups = {g.name: g for g in Group.objects.filter(name__in=group_names)}
    return _CreateLookups(queues, users, groups)


def _build_item(body: dict, lookups: _CreateLookups, actor, prefix: str) -> tuple[WorkItem, dict]:
    """Validate the semantics of one create body and build the unsaved item."""
    errors: list[dict[str, str]] = []
    queue = lookups.queues.get(body["queue"])
    if queue is None:
        raise NotFound(f"queue {body['queue']!r} not found" + (f" (at {prefix})" if prefix else ""))
    if not queue.active:
        errors.append({"field": _dotted(prefix, ["queue"]), "message": f"queue {queue.name} is not active"})
    due_at = _parse_time(body, "due_at", prefix, errors)
    follow_up_at = _parse_time(body, "follow_up_at", prefix, errors)
    related: dict[str, list] = {}
    for name in ("candidate_users", "excluded_users"):
        wanted = list(dict.fromkeys(body.get(name, [])))
        unknown = [u for u in wanted if u not in lookups.users]
        if unknown:
            errors.append({"field": _dotted(prefix, [name]), "message": f"unknown users: {', '.join(unknown)}"})
        related[name] = [lookups.users[u] for u in wanted if u in lookups.users]
    wanted_groups = list(dict.fromkeys(body.get("candidate_groups", [])))
    unknown_groups = [g for g in wanted_groups if g not in lookups.groups]
    if unknown_groups:
        errors.append(
            {"field": _dotted(prefix, ["candidate_groups"]), "message": f"unknown groups: {', '.join(unknown_groups)}"}
        )
    related["candidate_groups"] = [lookups.groups[g] for g in wanted_groups if g in lookups.groups]
    assignee = None
    if body.get("assignee"):
        assignee = lookups.users.get(body["assignee"])
        if assignee is None:
            errors.append({"field": _dotted(prefix, ["assignee"]), "message": f"unknown user {body['assignee']!r}"})
    strategy = body.get("strategy", "")
    if strategy and not wsconfig.get().strategy_enabled(strategy):
        errors.append({"field": _dotted(prefix, ["strategy"]), "message": f"strategy {strategy} is switched off"})
    callback_url = body.get("callback_url", "")
    if callback_url:
        try:
            _url_validator(callback_url)
        except DjangoValidationError:
            errors.append({"field": _dotted(prefix, ["callback_url"]), "message": "must be an http(s) URL"})
    if errors:
        raise ValidationFailed(errors)
    now = timezone.now()
    if due_at is None and queue.sla:
        due_at = now + queue.sla
    item = WorkItem(
        workflow_id=body["workflow_id"],
        run_id=body.get("run_id", ""),
        task_name=body["task_name"],
        title=body.get("title", ""),
        description=body.get("description", ""),
        queue=queue,
        priority=body.get("priority", 50),
        due_at=due_at,
        follow_up_at=follow_up_at,
        context_data=body.get("context_data", {}),
        required_skills=body.get("required_skills", []),
        sod_key=body.get("sod_key", ""),
        strategy=strategy,
        callback_url=callback_url,
        correlation_id=body.get("correlation_id", ""),
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    return item, {**related, "assignee": assignee}


def _insert_item(item: WorkItem, related: dict, actor, prefix: str) -> WorkItem:
    """Route, insert, link and record one new item: a single change at version 1.

    The distribution decision is taken before the insert and applied as the
    item's first transition (offer, assign or reserve), so a create costs one
    item row, one audit record and one event (plus `workitem.unassigned.v1`
    when a push strategy found nobody)."""
    route = route_item(item=item, requested_assignee=related["assignee"], related=related)
    if route.action == "assign":
        item.assign(user=route.user)
    elif route.action == "reserve":
        item.reserve(user=route.user, until=timezone.now() + item.queue.reservation_timeout)
    else:
        item.offer()
    item.event_seq = 1
    item.save(force_insert=True)
    for name in ("candidate_users", "candidate_groups", "excluded_users"):
        if related[name]:
            getattr(item, name).set(related[name])
    data: dict[str, Any] = {"route": route.action, "strategy": route.strategy}
    if route.user is not None:
        data["assignee" if route.action == "assign" else "reserved_for"] = route.user.username
    if route.on_behalf_of:
        data["on_behalf_of"] = route.on_behalf_of
    if route.unassigned:
        data["unassigned_reason"] = route.reason
    if route.user is not None:
        _touch_last_assigned(route.user.pk)
    _record_change(item=item, action="create", actor=actor, from_state="", data=data)
    if route.unassigned:
        _emit_unassigned(item, route)
    return item


def _check_may_create(actor) -> None:
    if actor is not None and not (_roles_for(actor) & DEFAULT_ACTION_ROLES["create"]):
        raise NotAllowed("your roles do not allow creating work items")


@transaction.atomic
def work_item_create(*, actor, data: dict) -> WorkItem:
    """Create one work item and distribute it (offer to its queue or assign)."""
    t0 = time.perf_counter()
    _check_may_create(actor)
    errors = _shape_errors(data)
    if errors:
        raise ValidationFailed(errors)
    item, related = _build_item(data, _lookups_for([data]), actor, "")
    item = _insert_item(item, related, actor, "")
    WORKITEM_CREATE_LATENCY_MS.observe((time.perf_counter() - t0) * 1000)
    return item


@transaction.atomic
def work_item_create_many(*, actor, items: list[dict]) -> list[WorkItem]:
    """Create up to `performance.bulkCreateMax` items in one transaction: all or none."""
    _check_may_create(actor)
    limit = wsconfig.get().performance.bulkCreateMax
    if not isinstance(items, list) or not items:
        raise ValidationFailed([{"field": "items", "message": "must be a non-empty list"}])
    if len(items) > limit:
        raise ValidationFailed([{"field": "items", "message": f"at most {limit} items per request"}])
    errors = [e for i, body in enumerate(items) for e in _shape_errors(body, f"items[{i}]")]
    if errors:
        raise ValidationFailed(errors)
    lookups = _lookups_for(items)
    built = [_build_item(body, lookups, actor, f"items[{i}]") for i, body in enumerate(items)]
    return [_insert_item(item, related, actor, f"items[{i}]") for i, (item, related) in enumerate(built)]


__all__ = [
    "COMMANDS",
    "allowed_actions_for",
    "check_version",
    "work_item_create",
    "work_item_create_many",
    "work_item_claim_next",
    *[f.__name__ for f in COMMANDS.values()],
]
