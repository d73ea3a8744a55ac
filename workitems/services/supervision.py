"""A supervisor's changes to an item's terms and holder: `update` (reprioritise, a new due date,
a new follow-up date: `PATCH /workitems/{id}`) and `reassign` (give it to someone else, whatever
its state: an unheld item is assigned, a held one delegated)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from config.timefmt import isoformat_z
from workitems import policy, schemas
from workitems.errors import InvalidTransition
from workitems.models import WorkItem
from workitems.selectors import work_item_get_for
from workitems.services._core import Command, execute
from workitems.services.assignment import give_to


class _Unchanged(Exception):  # noqa: N818 (a signal inside the command, never raised out of it)
    def __init__(self, item: WorkItem):
        self.item = item


def _shown(value: Any) -> Any:
    return isoformat_z(value) if isinstance(value, datetime) else value


@transaction.atomic
def work_item_update(
    *, item_id: int, actor, changes: dict[str, Any], expected_version: int | None = None, reason: str = ""
) -> WorkItem:
    """Change an open item's priority, due date or follow-up date (supervisors and admins by
    default; the lifecycle's `action_roles.update` may say otherwise). A new due date re-reads
    the SLA state against it (an extended deadline can bring a breached item back on track;
    policy levels already fired do not fire again). Audited with each field's old and new
    value; `workitem.updated.v1`. Values the item already has change nothing: no new version,
    no record, no event (a retried PATCH answers as the first did)."""
    audit_data: dict[str, Any] = {"reason": reason} if reason else {}
    transition_kwargs: dict[str, Any] = {}

    def check(cmd: Command) -> None:
        # After the state, role and reason checks: someone who may not update learns nothing more.
        parsed = schemas.update_changes(changes)
        old = {k: getattr(cmd.item, k) for k in parsed}
        changed = {k: [_shown(old[k]), _shown(v)] for k, v in parsed.items() if old[k] != v}
        if not changed:
            raise _Unchanged(cmd.item)
        transition_kwargs.update({k: parsed[k] for k in changed})
        audit_data["changes"] = changed

    try:
        return execute(
            action="update",
            item_id=item_id,
            actor=actor,
            expected_version=expected_version,
            args={"reason": reason},
            transition_kwargs=transition_kwargs,
            audit_data=audit_data,
            prepare=check,
        )
    except _Unchanged as same:
        return same.item


def reassign_action(item: WorkItem) -> str | None:
    """The action that gives `item` to someone else now: delegate for a held item, assign for
    an unheld one (what its lifecycle allows in its state), None when neither is possible."""
    available = item.available_actions()
    if "delegate" in available:
        return "delegate"
    return "assign" if "assign" in available else None


@transaction.atomic
def work_item_reassign(
    *, item_id: int, actor, user, override: bool = False, expected_version: int | None = None
) -> WorkItem:
    """Give the item to `user` whatever its state: delegated when someone holds it (ASSIGNED,
    IN_PROGRESS), assigned when nobody does (CREATED, OFFERED). Which one is decided with the row
    locked, by the item's lifecycle (reassign_action); the chosen command runs on that locked row
    and checks the rest (the actor's roles, the target's eligibility, constraints, the version)."""
    item = work_item_get_for(actor=actor, item_id=item_id, for_update=True)
    action = reassign_action(item)
    if action is None:
        raise InvalidTransition(
            f"cannot reassign work item {item.pk} in state {item.state}",
            action="reassign",
            state=item.state,
            allowed_actions=policy.allowed_actions_for(item, actor),
        )
    return give_to(
        action,
        item_id=item_id,
        actor=actor,
        user=user,
        override=override,
        expected_version=expected_version,
        locked_item=item,
    )
