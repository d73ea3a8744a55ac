"""Assignment and pull: offer, assign, claim, claim-next, release, accept, reject, delegate."""

from __future__ import annotations

from django.db import transaction

from config import wsconfig
from directory.roles import roles_of
from workitems import policy
from workitems.errors import ConstraintViolated, FeatureDisabled, InvalidTransition, NotAllowed, NotFound
from workitems.models import Queue, WorkItem
from workitems.selectors import claim_next_candidate_ids, claim_next_lock, claimer_lock, work_item_get_for
from workitems.services._core import execute, push, resolve_user


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
    personal = claimer.candidate.capacity
    if personal is not None and len(claimer.held_queue_ids) >= personal:
        return None
    custom = wsconfig.get().features.lifecycle.custom
    roles = roles_of(actor)
    return sorted(
        qid
        for qid, overrides, cap in claimer.queues
        if roles & policy.lifecycle_action_roles("claim", overrides if custom else None)
        and (cap is None or claimer.held_in(qid) < cap)
    )


@transaction.atomic
def work_item_claim_next(*, actor, queue: str | None = None, k: int = 32, rounds: int = 50) -> WorkItem | None:
    """Claim the best OFFERED item `actor` may take (priority desc, due_at asc, created_at asc),
    across its queues or in the one named; None when there is none.

    Statements: the caller's groups; the caller's row, locked, with its profile, what it holds
    and its member queues (selectors.claimer_lock: what it holds cannot change while it claims);
    the walk and the lock in one (selectors.claim_next_lock: an index walk per queue,
    selectors.claim_next_candidate_ids, whose cost does not grow with the number of open items,
    and of its best `k` rows the best nobody holds, FOR UPDATE SKIP LOCKED); and the change.
    Each attempt runs in a savepoint: a row that fails a holding constraint (separation of
    duties, skills) or the lifecycle's roles is released at once by the savepoint's rollback,
    so no caller keeps another from an item it may take.
    """
    if actor is None or not actor.is_authenticated:
        raise NotAllowed("claim-next needs a user")
    _check_pull_on()
    only = None
    if queue is not None:
        only = Queue.objects.filter(name=queue).values_list("id", flat=True).first()
        if only is None:
            raise NotFound(f"queue {queue!r} not found")
    claimer = claimer_lock(actor, only_queue=only)
    queue_ids = _claimable_queue_ids(actor, claimer)
    if not queue_ids and not policy.role_allows("claim", None, actor):
        # No lifecycle of the caller's queues grants what the default refuses.
        raise NotAllowed("your roles do not allow claiming work items")
    if queue_ids is None:  # at personal capacity
        return None
    # Rows taken, locked by others, or failing a check are left out of the next walk.
    passed_over: list[int] = []
    for _ in range(rounds):
        item = None
        try:
            with transaction.atomic():
                item = claim_next_lock(actor=actor, queue_ids=queue_ids, only_queue=only, k=k, skip=passed_over)
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
        remaining = claim_next_candidate_ids(actor=actor, queue_ids=queue_ids, only_queue=only, k=k, skip=passed_over)
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
