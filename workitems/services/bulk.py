"""Bulk actions: claim, reassign, cancel or move many items in one call, each through its own
command (`POST /workitems/bulk/{action}`).

Two modes, chosen by the caller:
- per item (the default): each item is its own transaction; the answer lists each one's outcome
  (the item after, or the problem that refused it), in the order asked. A refusal changes
  nothing of that item and does not stop the others.
- all or nothing (`atomic`): one transaction; the first refusal rolls every change back and is
  the answer, naming the item.

Items are locked in id order whatever order they were asked in, so two bulk calls over the same
items cannot deadlock each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from config import wsconfig
from workitems.errors import ValidationFailed, WorkstreamError
from workitems.models import WorkItem
from workitems.services.assignment import work_item_claim
from workitems.services.lifecycle import work_item_cancel
from workitems.services.moves import work_item_move
from workitems.services.supervision import work_item_reassign

# action → (command, the arguments it takes besides the item, the required ones)
BULK_ACTIONS: dict[str, tuple[Callable[..., WorkItem], tuple[str, ...], tuple[str, ...]]] = {
    "claim": (work_item_claim, (), ()),
    "reassign": (work_item_reassign, ("user", "override"), ("user",)),
    "cancel": (work_item_cancel, ("reason",), ()),
    "move": (work_item_move, ("queue",), ("queue",)),
}


@dataclass
class Outcome:
    """One item's answer: the item after its command, or the domain error that refused it."""

    index: int
    item_id: int
    item: WorkItem | None = None
    error: WorkstreamError | None = None


class BulkRefused(WorkstreamError):
    """All or nothing: item `index` was refused, so nothing changed. Carries that item's error."""

    def __init__(self, outcome: Outcome):
        self.outcome = outcome
        self.kind = outcome.error.kind
        super().__init__(f"items[{outcome.index}] (work item {outcome.item_id}): {outcome.error.detail}")


def bulk_specs(items: Any) -> list[tuple[int, int | None]]:
    """(id, expected version or None) of each entry of `items`; ValidationFailed names each bad one."""
    limit = wsconfig.get().performance.bulkCreateMax
    if not isinstance(items, list) or not 1 <= len(items) <= limit:
        raise ValidationFailed([{"field": "items", "message": f"a list of 1 to {limit} {{id, version?}} objects"}])
    specs, errors = [], []
    for i, entry in enumerate(items):
        if not isinstance(entry, dict) or "id" not in entry or set(entry) - {"id", "version"}:
            errors.append({"field": f"items[{i}]", "message": "an object with `id` and, optionally, `version`"})
            continue
        ident, version = entry["id"], entry.get("version")
        if isinstance(ident, bool) or not isinstance(ident, int) or ident < 1:
            errors.append({"field": f"items[{i}].id", "message": "a work item id (a positive integer)"})
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            errors.append({"field": f"items[{i}].version", "message": "the version you saw (a positive integer)"})
        specs.append((ident, version))
    if errors:
        raise ValidationFailed(errors)
    return specs


def bulk_arguments(action: str, args: dict[str, Any]) -> dict[str, Any]:
    """The action's arguments from `args`, with the required ones present; unknown ones refused."""
    _, takes, required = BULK_ACTIONS[action]
    errors = [
        {"field": k, "message": f"{action} takes only items, atomic, {', '.join(takes)}"}
        for k in args
        if k not in takes
    ]
    errors += [{"field": k, "message": "required"} for k in required if k not in args]
    if errors:
        raise ValidationFailed(errors)
    return dict(args)


def work_items_bulk(
    *, action: str, actor, items: Any, args: dict[str, Any] | None = None, atomic: bool = False
) -> list[Outcome]:
    """Fire `action` (claim, reassign, cancel, move) on each of `items` ([{id, version?}]) with
    `args`, through the action's own command; see the module's docstring for the two modes."""
    if action not in BULK_ACTIONS:
        raise ValidationFailed([{"field": "action", "message": f"one of {', '.join(BULK_ACTIONS)}"}])
    specs = bulk_specs(items)
    kwargs = bulk_arguments(action, args or {})
    command = BULK_ACTIONS[action][0]
    outcomes = [Outcome(index=i, item_id=ident) for i, (ident, _) in enumerate(specs)]
    order = sorted(range(len(specs)), key=lambda i: specs[i][0])  # lock in id order

    def run(i: int) -> None:
        ident, version = specs[i]
        outcomes[i].item = command(item_id=ident, actor=actor, expected_version=version, **kwargs)

    if atomic:
        with transaction.atomic():
            for i in order:
                try:
                    run(i)
                except WorkstreamError as exc:
                    outcomes[i].error = exc
                    raise BulkRefused(outcomes[i]) from exc
        return outcomes
    for i in order:
        try:
            with transaction.atomic():
                run(i)
        except WorkstreamError as exc:
            outcomes[i].error = exc
    return outcomes
