"""The command runner every work-item command uses.

A command runs in one transaction that (1) locks the item row, (2) checks the
caller's expected version, (3) runs the command's named validation pipeline,
(4) fires the django-fsm transition, (5) bumps `version` and saves the changed
fields, and (6) writes the audit record and the outbox event. The family
modules beside this one hold the commands (services/__init__.py says which does
what): create, assignment, lifecycle, escalation, moves, absence, supervision
and bulk change work items (bulk through the others' commands; create inserts
through `record_change` rather than `execute`), encryption re-encrypts their
context keys in place, and definitions, cases and task_types change queues,
lifecycles, calendars, cases and task types, each audited in its own stream.
Nothing else changes a work item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from audit.models import AuditHead
from audit.services import audit_record
from config import statements
from config.observability import CLAIM_CONFLICTS_TOTAL, WORKITEM_TRANSITIONS_TOTAL
from config.timefmt import isoformat_z
from directory.models import Profile
from distribution import constraints
from distribution.engine import route_item
from events.outbox import outbox_enqueue_into
from workitems import policy, schemas, sla
from workitems.errors import (
    AlreadyClaimed,
    ConstraintViolated,
    InvalidTransition,
    NotAllowed,
    StaleVersion,
    ValidationFailed,
)
from workitems.models import EVENT_NAMES, State, WorkItem
from workitems.selectors import work_item_get_for
from workitems.snapshots import work_item_snapshot

User = get_user_model()


@dataclass
class Command:
    """One command in flight: what the validators look at."""

    action: str
    item: WorkItem
    actor: Any  # a User, or None for the system
    target_user: Any = None  # the user who will hold the item (claim, assign, delegate)
    target_locked: Any = None  # constraints.Locked: target_user's row already locked and read (claim-next)
    args: dict[str, Any] = field(default_factory=dict)


# --- the validation pipeline --------------------------------------------------------------


def validate_lifecycle_allows(cmd: Command) -> None:
    item = cmd.item
    if cmd.action in item.available_actions():
        return
    allowed = policy.allowed_actions_for(item, cmd.actor)
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
    if not policy.role_allows(cmd.action, cmd.item, cmd.actor):
        raise NotAllowed(f"your roles do not allow {cmd.action} on work item {cmd.item.pk}")
    if not policy.relation_allows(cmd.action, cmd.item, cmd.actor):
        who = policy.RELATION_NAMES[policy.RELATIONS[cmd.action]]
        raise NotAllowed(f"only {who} may {cmd.action} work item {cmd.item.pk}")


def validate_queue_active(cmd: Command) -> None:
    if not cmd.item.queue.active:
        raise ValidationFailed([{"field": "queue", "message": f"queue {cmd.item.queue.name} is not active"}])


def validate_input_shape(cmd: Command) -> None:
    args = cmd.args
    schemas.check_reason(args)
    nul = schemas.nul_errors(args)
    if nul:
        raise ValidationFailed(nul)
    if cmd.action == "complete":
        errors = schemas.result_errors(args.get("result"), cmd.item.result_schema)
        if errors:
            raise ValidationFailed(errors)
    if cmd.action == "set_sub_status":
        name = args.get("sub_status")
        lifecycle = cmd.item.lifecycle
        if not isinstance(name, str) or not lifecycle.sub_status_move_allowed(cmd.item.sub_status, name):
            allowed = (lifecycle.sub_statuses or {}).get("moves", {}).get(cmd.item.sub_status, [])
            raise ValidationFailed(
                [{"field": "sub_status", "message": f"cannot move from {cmd.item.sub_status!r}; allowed: {allowed}"}]
            )
    if not isinstance(args.get("override", False), bool):
        raise ValidationFailed([{"field": "override", "message": "must be true or false"}])
    if cmd.action == "delegate" and cmd.target_user is not None and cmd.target_user.pk == cmd.item.assignee_id:
        raise ValidationFailed([{"field": "user", "message": "the item is already assigned to this user"}])


def validate_candidate(cmd: Command) -> None:
    """Claiming needs candidacy (policy.may_claim); the paths that give the item to someone
    (assign, delegate, accept) check their target with `target_eligible`."""
    if cmd.action == "claim":  # read with the row when the command locked it for this claimer
        known = getattr(cmd.item, "claimable", None) if cmd.target_user is cmd.actor else None
        constraints.check_candidate(cmd.target_user, cmd.item, known=known)


def validate_target_eligible(cmd: Command) -> None:
    """The user the item goes to is an active person in its pool (policy.hold_refusal); a
    supervisor's explicit `override` waives the pool, and only theirs (403 for anyone else)."""
    override = cmd.args.get("override", False)
    if override and not policy.may_override_holding(cmd.actor):
        raise NotAllowed(f"only supervisors and admins may override who may hold work item {cmd.item.pk}")
    refusal = policy.hold_refusal(cmd.target_user, cmd.item, override=override)
    if refusal is not None:
        constraint, detail = refusal
        raise ConstraintViolated(detail, constraint=constraint)


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
            allowed_actions=policy.allowed_actions_for(item, cmd.actor),
        )


def validate_holding_constraints(cmd: Command) -> None:
    """Active, under capacity, skilled, not excluded, separation of duties (distribution.constraints)."""
    if cmd.target_user is not None:
        constraints.check_can_hold(cmd.target_user, cmd.item, locked=cmd.target_locked)


VALIDATORS: dict[str, Callable[[Command], None]] = {
    "lifecycle_allows": validate_lifecycle_allows,
    "actor_allowed": validate_actor_allowed,
    "queue_active": validate_queue_active,
    "input_shape": validate_input_shape,
    "reservation": validate_reservation,
    "candidate": validate_candidate,
    "target_eligible": validate_target_eligible,
    "constraints": validate_holding_constraints,
}

# The order is the order of the answers a caller gets: a transition the state
# does not allow (409) before a role that may not (403), before bad input (400),
# before a constraint on the person who would hold the item.
_BASE = ("lifecycle_allows", "actor_allowed", "input_shape")
_HOLDING = ("candidate", "constraints")
_GIVING = ("target_eligible", "constraints")  # the item goes to a user someone names
PIPELINES: dict[str, tuple[str, ...]] = {
    "offer": (*_BASE, "queue_active"),
    "assign": (*_BASE, "queue_active", *_GIVING),
    "claim": (*_BASE, "queue_active", "reservation", *_HOLDING),
    "accept": (*_BASE, *_GIVING),
    "delegate": (*_BASE, *_GIVING),
}


def pipeline_for(action: str) -> tuple[str, ...]:
    return PIPELINES.get(action, _BASE)


def run_pipeline(cmd: Command, names: Iterable[str]) -> None:
    for name in names:
        VALIDATORS[name](cmd)


# --- the shared execution of a command --------------------------------------------------


def check_version(item: WorkItem, expected_version: int | None) -> None:
    if expected_version is not None and item.version != expected_version:
        raise StaleVersion(
            f"work item {item.pk} is at version {item.version}, not {expected_version}",
            expected=expected_version,
            current=item.version,
        )


def _field_values(item: WorkItem) -> dict[str, Any]:
    return {f.attname: getattr(item, f.attname) for f in item._meta.concrete_fields}


def enqueue_event(
    *,
    item: WorkItem,
    name: str,
    action: str,
    actor,
    from_state: str,
    data: dict,
    correlation_id: str = "",
    batch: statements.Batch | None = None,
) -> None:
    event = {
        "event_type": f"workitem.{name}.v1",
        "aggregate_id": item.pk,
        "sequence": item.event_seq,
        "correlation_id": correlation_id or item.correlation_id,
        "occurred_at": item.updated_at,
        "payload": {
            "work_item": work_item_snapshot(item),
            "transition": {
                "action": action,
                "from_state": from_state,
                "to_state": item.state,
                "actor": getattr(actor, "username", None),
                **data,
            },
        },
    }
    with _into(batch) as writes:
        outbox_enqueue_into(writes, **event)


@contextmanager
def _into(batch: statements.Batch | None):
    """The caller's `batch` (its writes go with the change's statement), or one of our own,
    sent when the block ends."""
    if batch is not None:
        yield batch
        return
    own = statements.Batch()
    yield own
    own.run()


_UNREAD = object()


def audit_head(item: WorkItem) -> tuple[int, str] | None:
    """The head of the item's audit chain: as read with the row lock (selectors.work_item_get_for,
    and kept up to date by each change), else read now (an item locked some other way)."""
    head = getattr(item, "audit_head", _UNREAD)
    if head is _UNREAD:
        head = AuditHead.objects.filter(stream=f"workitem:{item.pk}").values_list("seq", "hash").first()
    return head


def record_change(
    *,
    item: WorkItem,
    action: str,
    actor,
    from_state: str,
    data: dict,
    correlation_id: str = "",
    batch: statements.Batch | None = None,
) -> None:
    """Audit record + outbox event for one change, in the caller's transaction: added to
    `batch` (sent with the change as one statement), or sent now as one statement.
    The caller has already counted the event in `item.event_seq` (and saved it, or put the
    UPDATE in `batch`)."""
    with _into(batch) as writes:
        record = audit_record(
            batch=writes,
            head=audit_head(item),
            stream=f"workitem:{item.pk}",
            work_item=item,
            action=action,
            actor=actor,
            from_state=from_state,
            to_state=item.state,
            data={"version": item.version, **data},
            correlation_id=correlation_id or item.correlation_id,
        )
        item.audit_head = (record.seq, record.hash)
        enqueue_event(
            item=item,
            name=EVENT_NAMES[action],
            action=action,
            actor=actor,
            from_state=from_state,
            data=data,
            correlation_id=correlation_id,
            batch=writes,
        )
    WORKITEM_TRANSITIONS_TOTAL.labels(action=action).inc()


def emit_unassigned(item: WorkItem, route, *, batch: statements.Batch | None = None) -> None:
    """`workitem.unassigned.v1`: a push strategy found nobody; the item stays OFFERED.
    Not a change of the item (its version stays), so it has an event but no audit record."""
    item.event_seq += 1
    with _into(batch) as writes:
        writes.update(WorkItem, {"event_seq": item.event_seq}, pk=item.pk)
        enqueue_event(
            item=item,
            name="unassigned",
            action="unassigned",
            actor=None,
            from_state=item.state,
            data={"strategy": route.strategy, "reason": route.reason},
            batch=writes,
        )


def touch_last_assigned(user_id: int, *, batch: statements.Batch | None = None) -> None:
    """For longest-idle: when this user last received an item (the profile is made if missing)."""
    with _into(batch) as writes:
        writes.insert(
            Profile,
            [Profile(user_id=user_id, last_assigned_at=timezone.now())],
            unique_fields=["user"],
            update_fields=["last_assigned_at"],
        )


def save_changes(item: WorkItem, before: dict[str, Any], batch: statements.Batch) -> None:
    """The UPDATE of the fields a command changed, into `batch`. The row is locked (the
    command read it FOR UPDATE), so no other writer can have moved its state or version."""
    changed = {name: value for name, value in _field_values(item).items() if before[name] != value}
    batch.update(WorkItem, changed, pk=item.pk)


def execute(
    *,
    action: str,
    item_id: int,
    actor,
    expected_version: int | None,
    target_user=None,
    target_locked=None,
    args: dict[str, Any] | None = None,
    transition_kwargs: dict[str, Any] | None = None,
    audit_data: dict[str, Any] | None = None,
    prepare: Callable[[Command], None] | None = None,
    locked_item: WorkItem | None = None,
    skip: tuple[str, ...] = (),
    writes: Callable[[Command, statements.Batch], None] | None = None,
) -> WorkItem:
    """Lock, check, validate, transition, save, audit, enqueue: the body of every command.

    Statements: the lock (selectors.work_item_get_for: the row, its visibility, its audit
    head, and for a claim the caller's candidacy), the holding constraints where the item
    goes to a user (one statement that locks that user), and ONE statement for the change:
    the item's UPDATE, the profile's last assignment, the audit record, the chain head and
    the outbox event (config.statements.Batch), with `writes(cmd, batch)`'s own (a forward's
    candidate lists)."""
    claimer = actor if action == "claim" and actor is not None else None
    item = locked_item or work_item_get_for(actor=actor, item_id=item_id, for_update=True, claimer=claimer)
    try:
        check_version(item, expected_version)
    except StaleVersion:
        if action == "claim":
            CLAIM_CONFLICTS_TOTAL.inc()
        raise
    cmd = Command(
        action=action, item=item, actor=actor, target_user=target_user, target_locked=target_locked, args=args or {}
    )
    run_pipeline(cmd, [name for name in pipeline_for(action) if name not in skip])
    if prepare is not None:
        prepare(cmd)
    before = _field_values(item)
    from_state = item.state
    getattr(item, action)(**(transition_kwargs or {}))
    item.version += 1
    item.event_seq += 1
    item.updated_at = timezone.now()
    audit_data = {**(audit_data or {}), **sla.bookkeep(item, action, item.updated_at)}
    batch = statements.Batch()
    save_changes(item, before, batch)
    if writes is not None:
        writes(cmd, batch)
    if item.assignee_id and item.assignee_id != before["assignee_id"]:
        touch_last_assigned(item.assignee_id, batch=batch)
    elif item.reserved_for_id and item.reserved_for_id != before["reserved_for_id"]:
        touch_last_assigned(item.reserved_for_id, batch=batch)  # a reservation is an assignment offered
    record_change(item=item, action=action, actor=actor, from_state=from_state, data=audit_data or {}, batch=batch)
    batch.run()
    item._update_initial_state()  # django-fsm's record of the saved state (a later save() checks it)
    return item


def push(item: WorkItem, *, exclude_ids=()) -> WorkItem:
    """Send an OFFERED item through distribution again (after release, reject, a lapsed
    reservation or an absence): its strategy may assign or reserve it to someone else."""
    if item.state != State.OFFERED or item.reserved_for_id:
        return item
    route = route_item(item=item, exclude_ids=exclude_ids)
    if route.action == "offer":
        if route.unassigned:
            emit_unassigned(item, route)
        return item
    data = {"assignee": route.user.username, "strategy": route.strategy}
    if route.on_behalf_of:
        data["on_behalf_of"] = route.on_behalf_of
    if route.action == "reserve":
        until = timezone.now() + item.queue.reservation_timeout
        return execute(
            action="reserve",
            item_id=item.pk,
            actor=None,
            expected_version=None,
            transition_kwargs={"user": route.user, "until": until},
            audit_data={**data, "reserved_until": isoformat_z(until)},
            locked_item=item,
        )
    return execute(
        action="assign",
        item_id=item.pk,
        actor=None,
        expected_version=None,
        target_user=route.user,
        transition_kwargs={"user": route.user},
        audit_data=data,
        locked_item=item,
        skip=("target_eligible",),  # distribution chose from the candidates it resolved
    )


def resolve_user(user, field_name: str = "user"):
    """A User from an instance or a username; ValidationFailed if there is none."""
    if isinstance(user, User):
        return user
    if isinstance(user, str) and user:
        found = User.objects.filter(username=user).first()
        if found is not None:
            return found
        raise ValidationFailed([{"field": field_name, "message": f"unknown user {user!r}"}])
    raise ValidationFailed([{"field": field_name, "message": "a username is required"}])


def lock_for_system(item_id: int) -> WorkItem:
    """The item, row-locked, as the system sees it (every item)."""
    return work_item_get_for(actor=None, item_id=item_id, for_update=True)
