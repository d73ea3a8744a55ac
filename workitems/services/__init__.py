"""Commands on work items and their definitions (queues, lifecycles, calendars, cases, task
types): the one way they change.

One module per action family (as Zulip's `zerver/actions/` does), all running on
the command runner in `_core` (lock, version check, named validation pipeline,
transition, audit record and outbox event in one transaction):

    create       work_item_create, work_item_create_many
    assignment   offer, assign, claim, claim_next, release, accept, reject, delegate, forward
    lifecycle    start, complete, fail, suspend, resume, cancel, skip, set_sub_status
    escalation   escalate; the SLA scan (work_item_sla_advance, sla_scan)
    moves        move to another queue; the capacity check (queue_rebalance, queues_capacity_check);
                 a person's or a queue's excess over capacity redistributed
    absence      hand-over and return for absences, reservation expiry
    definitions  create and update queues, lifecycle definitions and business calendars
    encryption   re-encryption of the encrypted context keys (context_keys_rotate)
    cases        case_create, case_close, case_reopen (items join a case on create)
    task_types   task types (a workflow's task defaults) and workflow registration
    supervision  update (priority, due and follow-up dates), reassign (assign or delegate)
    bulk         claim, reassign, cancel or move many items (per item, or all or nothing)

Callers write `from workitems import services` and call `services.<command>`.
"""

from __future__ import annotations

from collections.abc import Callable

from workitems.models import ACTIONS, EVENT_NAMES, WorkItem
from workitems.policy import allowed_actions_for
from workitems.schemas import MAX_REASON
from workitems.services._core import check_version
from workitems.services.absence import (
    work_item_expire_reservation,
    work_item_hand_over_for_absence,
    work_item_return_to_owner,
    work_items_expire_reservations,
    work_items_hand_over,
    work_items_return_to,
)
from workitems.services.assignment import (
    work_item_accept,
    work_item_assign,
    work_item_claim,
    work_item_claim_next,
    work_item_delegate,
    work_item_forward,
    work_item_offer,
    work_item_reject,
    work_item_release,
)
from workitems.services.bulk import BULK_ACTIONS, BulkRefused, work_items_bulk
from workitems.services.cases import case_close, case_create, case_reopen
from workitems.services.create import work_item_create, work_item_create_many
from workitems.services.definitions import (
    calendar_create,
    calendar_update,
    lifecycle_create,
    lifecycle_update,
    queue_create,
    queue_update,
)
from workitems.services.encryption import RotationReport, context_keys_rotate
from workitems.services.escalation import sla_scan, work_item_escalate, work_item_sla_advance
from workitems.services.lifecycle import (
    work_item_cancel,
    work_item_complete,
    work_item_fail,
    work_item_resume,
    work_item_set_sub_status,
    work_item_skip,
    work_item_start,
    work_item_suspend,
)
from workitems.services.moves import (
    queue_rebalance,
    queues_capacity_check,
    work_item_move,
    work_items_redistribute_over_capacity,
)
from workitems.services.supervision import work_item_reassign, work_item_update
from workitems.services.task_types import task_type_create, task_type_update, workflow_register

# The command of each action, keyed by the action table's names (the system's own steps,
# `reserve` inside push and the SLA scan's state changes, have none). A name missing here is
# an import error.
COMMANDS: dict[str, Callable[..., WorkItem]] = {
    name: globals()[f"work_item_{name}"] for name, action in ACTIONS.items() if not action.system
}

__all__ = [
    "BULK_ACTIONS",
    "BulkRefused",
    "COMMANDS",
    "EVENT_NAMES",
    "MAX_REASON",
    "RotationReport",
    "allowed_actions_for",
    "calendar_create",
    "case_close",
    "case_create",
    "case_reopen",
    "calendar_update",
    "check_version",
    "context_keys_rotate",
    "lifecycle_create",
    "lifecycle_update",
    "queue_create",
    "queue_rebalance",
    "queue_update",
    "queues_capacity_check",
    "work_items_redistribute_over_capacity",
    "sla_scan",
    "task_type_create",
    "task_type_update",
    "work_item_accept",
    "work_item_assign",
    "work_item_cancel",
    "work_item_claim",
    "work_item_claim_next",
    "work_item_complete",
    "work_item_create",
    "work_item_create_many",
    "work_item_delegate",
    "work_item_escalate",
    "work_item_expire_reservation",
    "work_item_fail",
    "work_item_forward",
    "work_item_hand_over_for_absence",
    "work_item_move",
    "work_item_offer",
    "work_item_reassign",
    "work_item_reject",
    "work_item_release",
    "work_item_resume",
    "work_item_return_to_owner",
    "work_item_set_sub_status",
    "work_item_skip",
    "work_item_sla_advance",
    "work_item_start",
    "work_item_suspend",
    "work_item_update",
    "work_items_bulk",
    "work_items_expire_reservations",
    "work_items_hand_over",
    "work_items_return_to",
    "workflow_register",
]
