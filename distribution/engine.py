"""Where a new or returned item goes: the strategy registry applied to the resolved candidates.

`route_item` never writes the item; the service layer applies the decision
(assign, reserve or offer) as the item's own transition, with its audit
record and event. Round robin's cursor and the chosen user's row are locked
here, inside the caller's transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

from config import wsconfig
from distribution import constraints, strategies
from distribution.models import RoundRobinCursor
from distribution.strategies import Candidate
from workitems.models import State, WorkItem

DISTRIBUTION_RESOLUTION_TIME_MS = Histogram(
    "distribution_resolution_time_ms",
    "Time to resolve candidates and choose one, in ms",
    buckets=(0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500),
)
ASSIGNMENTS_TOTAL = Counter("distribution_assignments_total", "Items pushed to a user, by strategy", ["strategy"])
UNASSIGNED_TOTAL = Counter("distribution_unassigned_total", "Push attempts that found nobody, by reason", ["reason"])


@dataclass(frozen=True)
class Route:
    """What to do with an item: offer it to its candidates, or assign/reserve it for `user`."""

    action: str  # "offer" | "assign" | "reserve"
    user: object | None = None
    strategy: str = "offer"
    reason: str = ""  # why a push strategy fell back to offer ("" when it did not)
    on_behalf_of: int | None = None  # the absent user a delegate stands in for

    @property
    def unassigned(self) -> bool:
        return self.action == "offer" and bool(self.reason)


def strategy_for(item, requested_assignee=None) -> str:
    if requested_assignee is not None:
        return "direct"
    return item.strategy or item.queue.strategy or "offer"


def route_item(*, item, requested_assignee=None, related: dict | None = None, exclude_ids=()) -> Route:
    """Decide how `item` is distributed: its strategy over the candidates that pass every constraint."""
    name = strategy_for(item, requested_assignee)
    cfg = wsconfig.get()
    if name == "offer":
        return Route(action="offer")
    if not cfg.assignment.push:
        return Route(action="offer", strategy=name, reason="push assignment is switched off")
    if not cfg.strategy_enabled(name):
        return Route(action="offer", strategy=name, reason=f"strategy {name} is switched off")
    t0 = time.perf_counter()
    if requested_assignee is not None:
        cands = list(constraints.load_candidates([requested_assignee.pk], item).values())
        res = constraints.apply_constraints(cands, item, related=related)
    else:
        res = constraints.resolve(item, related=related)
    pool = [c for c in res.candidates if c.user_id not in set(exclude_ids)]
    emptied_by = res.emptied_by or ("excluded" if res.candidates and not pool else None)
    strategy = strategies.get(name)
    chosen = _choose_and_lock(strategy, pool, item)
    DISTRIBUTION_RESOLUTION_TIME_MS.observe((time.perf_counter() - t0) * 1000)
    if chosen is None:
        reason = emptied_by or "capacity"
        UNASSIGNED_TOTAL.labels(reason=reason).inc()
        return Route(action="offer", strategy=name, reason=reason)
    ASSIGNMENTS_TOTAL.labels(strategy=name).inc()
    choice, user = chosen
    action = "reserve" if item.queue.reservation_timeout else "assign"
    return Route(action=action, user=user, strategy=name, on_behalf_of=choice.on_behalf_of)


def familiar_user_id(item) -> int | None:
    """Who completed the latest other completed item of the item's run (workflow_id and
    run_id; wi_workflow_run_idx), or None (no run, or nothing of it completed yet)."""
    if not item.run_id:
        return None
    return (
        WorkItem.objects.filter(workflow_id=item.workflow_id, run_id=item.run_id, state=State.COMPLETED)
        .exclude(pk=item.pk)
        .exclude(assignee__isnull=True)
        .order_by("-completed_at", "-id")
        .values_list("assignee_id", flat=True)
        .first()
    )


def _choose_and_lock(strategy, pool: list[Candidate], item) -> tuple[Candidate, object] | None:
    """Choose, then lock the chosen user and re-check capacity: a concurrent assignment
    may have filled them since the loads were read. Passed-over users drop out.

    Round robin's cursor (one row per queue) is locked before the choice and written
    after it, so concurrent creators queue on it and never take the same turn twice.
    Lock order everywhere: item row, then round-robin cursor, then user row."""
    pool = list(pool)
    cursor = RoundRobinCursor.lock_for(item.queue_id) if strategy.uses_cursor and pool else None
    extra = {"familiar_user_id": familiar_user_id(item)} if strategy.uses_familiar and pool else {}
    while pool:
        choice = strategy.choose(pool, item, last_user_id=cursor.last_user_id if cursor else None, **extra)
        if choice is None:
            return None
        locked = constraints.lock_candidate(choice.user_id, item)  # one statement: lock and re-read
        if locked is not None and constraints.under_capacity(locked.candidate, item.queue.capacity_per_user):
            if cursor is not None:
                cursor.last_user_id = choice.user_id
                cursor.save(update_fields=["last_user_id"])
            return choice, locked.user
        pool = [c for c in pool if c.user_id != choice.user_id]
    return None
