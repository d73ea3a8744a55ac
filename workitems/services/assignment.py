"""Assignment and pull: offer, assign, claim, claim-next, release, accept, reject, delegate."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Q

from config import wsconfig
from directory.models import Profile
from directory.roles import roles_of
from workitems import policy
from workitems.errors import ConstraintViolated, FeatureDisabled, InvalidTransition, NotAllowed, NotFound
from workitems.models import HELD_STATES, Queue, State, WorkItem
from workitems.selectors import CLAIM_ORDER, claim_next_candidate_ids, member_queue_ids, work_item_get_for
from workitems.services._core import execute, push, resolve_user


def _check_pull_on() -> None:
    if not wsconfig.get().assignment.pull:
        raise FeatureDisabled("pull assignment (claim, claim-next) is switched off", toggle="assignment.pull")


@transaction.atomic
def work_item_offer(*, item_id: int, actor=None, expected_version: int | None = None) -> WorkItem:
    """Offer a CREATED item to its candidates (pull)."""
    return execute(action="offer", item_id=item_id, actor=actor, expected_version=expected_version)


def _give_to(action: str, *, item_id: int, actor, user, override: bool, expected_version: int | None) -> WorkItem:
    """assign / delegate: the item goes to `user` (a username or a User), who must be an
    active person in its pool (policy.hold_refusal) unless a supervisor overrides; an
    override is audited (`override: true`)."""
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
    )


@transaction.atomic
def work_item_assign(
    *, item_id: int, actor, user, override: bool = False, expected_version: int | None = None
) -> WorkItem:
    """Give a CREATED or OFFERED item to `user` (a supervisor's choice)."""
    return _give_to(
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


def _full_queue_ids(actor) -> tuple[bool, set[int]]:
    """(at personal capacity?, queues where `actor` is at capacity_per_user), counting
    reservations as load, so claim-next does not walk items it could not take."""
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


def _queues_letting_claim(actor, queue_ids: list[int]) -> list[int]:
    """Of `queue_ids`, those whose lifecycle lets `actor`'s roles claim (policy.action_roles)."""
    custom = wsconfig.get().features.lifecycle.custom
    roles = roles_of(actor)
    rows = Queue.objects.filter(pk__in=queue_ids).values_list("id", "lifecycle__action_roles")
    return sorted(
        qid for qid, overrides in rows if roles & policy.lifecycle_action_roles("claim", overrides if custom else None)
    )


@transaction.atomic
def work_item_claim_next(*, actor, queue: str | None = None, k: int = 32, rounds: int = 50) -> WorkItem | None:
    """Claim the best OFFERED item `actor` may take (priority desc, due_at asc, created_at asc),
    across its queues or in the one named; None when there is none.

    The candidates come from an index walk per queue (selectors.claim_next_candidate_ids:
    its cost does not grow with the number of open items), without locks. They are then
    locked with FOR UPDATE SKIP LOCKED, each attempt in a savepoint: a row another caller
    holds is skipped without waiting, and a row that fails a holding constraint (separation
    of duties, skills) or the lifecycle's roles is released at once by the savepoint's
    rollback, so no caller keeps another from an item it may take.
    """
    if actor is None or not actor.is_authenticated:
        raise NotAllowed("claim-next needs a user")
    _check_pull_on()
    only = None
    if queue is not None:
        only = Queue.objects.filter(name=queue).values_list("id", flat=True).first()
        if only is None:
            raise NotFound(f"queue {queue!r} not found")
    member = member_queue_ids(actor, only_queue=only)
    queue_ids = _queues_letting_claim(actor, member)
    if not queue_ids and not policy.role_allows("claim", None, actor):
        # No lifecycle of the caller's queues grants what the default refuses.
        raise NotAllowed("your roles do not allow claiming work items")
    at_capacity, full = _full_queue_ids(actor)
    if at_capacity:
        return None
    queue_ids = [q for q in queue_ids if q not in full]
    # Each round walks the index for the next `k` candidates, then locks the best of them
    # that nobody else holds in ONE statement (FOR UPDATE SKIP LOCKED over those ids), so a
    # crowd of callers sharing the same top rows does not pay a round trip per locked row.
    # Rows taken, locked by others, or failing a check are left out of the next walk.
    passed_over: list[int] = []
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
                        .order_by(*CLAIM_ORDER)
                        .first()
                    )
                    if item is None:  # every one of them is taken or being taken right now
                        break
                    return execute(
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
    return _give_to(
        "delegate", item_id=item_id, actor=actor, user=user, override=override, expected_version=expected_version
    )
