"""The SLA clock and the escalation policy, as rules (no writes: the commands in
workitems.services.escalation apply them).

An item with a deadline has an SLA clock from `sla_started_at` to `due_at`, measured in its
queue's business calendar when it has one (workitems.calendars), else around the clock. Its
*allowed time* is the working time between the two. A moment of the policy is a share of the
allowed time: `at: 0.75` is when three quarters of it have passed, `at: 1.0` the deadline.
While the item is SUSPENDED the clock stops: on resume `sla_started_at` and `due_at` move out
by the working time it was suspended, so the allowed time stays what it was.

`sla_next_at` is the next moment the SLA scan must look at the item (the next state change
or policy level), indexed, so the scan never walks items with nothing due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from config import wsconfig
from config.timefmt import isoformat_z
from workitems.calendars import BusinessCalendar
from workitems.models import OPEN_STATES, Queue, SlaState, State, WorkItem

AROUND_THE_CLOCK = BusinessCalendar(
    "UTC", {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
)
ACTION_TYPES = ("notify", "raise_priority", "reassign", "release", "escalate_queue")
NOTIFY_TARGETS = ("assignee", "supervisors", "candidates")


def calendar_of(queue: Queue) -> BusinessCalendar:
    return queue.calendar.business() if queue.calendar_id else AROUND_THE_CLOCK


def due_from(queue: Queue, start: datetime, allowed: timedelta | None = None) -> datetime | None:
    """The deadline of an item created at `start` in `queue`: `allowed` (its task type's SLA)
    or else the queue's `sla` later, in the queue's calendar (None without either)."""
    allowed = allowed or queue.sla
    if not allowed:
        return None
    return calendar_of(queue).add(start, allowed)


def default_policy(queue: Queue) -> list[dict[str, Any]]:
    """The policy of a queue that names none: `sla.defaultPolicy` from the configuration
    file when it sets one, else notify at the at-risk share; at the deadline raise the
    level, notify, and move an unclaimed item to the escalation queue."""
    configured = wsconfig.get().sla.defaultPolicy
    if configured:
        return configured
    at_deadline: list[dict[str, Any]] = [{"type": "notify", "to": ["assignee", "supervisors"]}]
    if queue.escalation_queue_id:
        at_deadline.append({"type": "escalate_queue"})
    return [
        {"at": queue.at_risk_ratio, "actions": [{"type": "notify", "to": ["assignee", "supervisors"]}]},
        {"at": 1.0, "actions": at_deadline},
    ]


def policy_of(queue: Queue) -> list[dict[str, Any]]:
    return sorted(queue.escalation_policy or default_policy(queue), key=lambda level: level["at"])


def policy_errors(policy: Any, field: str = "escalation_policy") -> list[dict[str, str]]:
    """Why `policy` is not a valid escalation policy (empty when it is); queue names are not checked here."""
    if policy is None:
        return []
    if not isinstance(policy, list) or not policy:
        return [{"field": field, "message": "must be null or a non-empty list of levels {at, actions}"}]
    errors = []
    for i, level in enumerate(policy):
        where = f"{field}[{i}]"
        if not isinstance(level, dict) or set(level) != {"at", "actions"}:
            errors.append({"field": where, "message": "a level is an object with exactly 'at' and 'actions'"})
            continue
        at = level["at"]
        if isinstance(at, bool) or not isinstance(at, int | float) or not 0 < at <= 10:
            errors.append({"field": f"{where}.at", "message": "a share of the allowed time, above 0 and at most 10"})
        if not isinstance(level["actions"], list) or not level["actions"]:
            errors.append({"field": f"{where}.actions", "message": "a non-empty list of actions"})
            continue
        for j, action in enumerate(level["actions"]):
            errors.extend(_action_errors(action, f"{where}.actions[{j}]"))
    return errors


def config_errors(cfg) -> list[tuple[str, str]]:
    """The configuration's `sla.defaultPolicy`, checked by the rule queues' policies follow
    (registered with config.wsconfig.add_check at start-up). A reassign's queue is not
    checked here: queues are data; a level naming one that does not exist moves nothing."""
    return [(e["field"], e["message"]) for e in policy_errors(cfg.sla.defaultPolicy, field="sla.defaultPolicy")]


def _action_errors(action: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(action, dict) or action.get("type") not in ACTION_TYPES:
        return [{"field": where, "message": f"an action has a type: one of {', '.join(ACTION_TYPES)}"}]
    kind = action["type"]
    allowed = {"notify": {"type", "to"}, "raise_priority": {"type", "by"}, "reassign": {"type", "queue"}}.get(
        kind, {"type"}
    )
    if set(action) - allowed:
        return [{"field": where, "message": f"{kind} takes only {', '.join(sorted(allowed))}"}]
    if kind == "raise_priority":
        by = action.get("by")
        if isinstance(by, bool) or not isinstance(by, int) or not 1 <= by <= 100:
            return [{"field": f"{where}.by", "message": "an integer from 1 to 100"}]
    if kind == "reassign" and not (isinstance(action.get("queue"), str) and action["queue"]):
        return [{"field": f"{where}.queue", "message": "the name of the queue to move the item to"}]
    if kind == "notify":
        to = action.get("to", ["assignee"])
        if not isinstance(to, list) or not to or not all(isinstance(t, str) and t for t in to):
            return [
                {
                    "field": f"{where}.to",
                    "message": "a list of targets: assignee, supervisors, candidates or group names",
                }
            ]
    return []


@dataclass(frozen=True)
class Clock:
    """The SLA clock of one item: its calendar, start, deadline and allowed time."""

    calendar: BusinessCalendar
    start: datetime
    due: datetime

    @property
    def allowed(self) -> timedelta:
        return self.calendar.elapsed(self.start, self.due)

    def moment(self, share: float) -> datetime:
        """When `share` of the allowed time has passed (1.0: the deadline itself)."""
        if share == 1.0:
            return self.due
        return self.calendar.add(self.start, self.allowed * share)


def clock_of(item: WorkItem) -> Clock | None:
    if item.due_at is None:
        return None
    return Clock(calendar_of(item.queue), item.sla_started_at or item.created_at, item.due_at)


def state_at(item: WorkItem, now: datetime) -> str:
    """The SLA state of `item` at `now`."""
    if item.due_at is None:
        return SlaState.NONE
    if item.state not in OPEN_STATES:
        done = item.completed_at or item.closed_at or now
        return SlaState.MET if item.state == State.COMPLETED and done <= item.due_at else SlaState.MISSED
    if now >= item.due_at:
        return SlaState.BREACHED
    clock = clock_of(item)
    if now >= clock.moment(item.queue.at_risk_ratio):
        return SlaState.AT_RISK
    return SlaState.ON_TRACK


def due_levels(item: WorkItem, now: datetime) -> list[tuple[int, dict[str, Any]]]:
    """(index, level) of the policy levels past due at `now` that have not fired yet."""
    clock = clock_of(item)
    if clock is None or item.state not in OPEN_STATES:
        return []
    levels = policy_of(item.queue)
    return [(i, lvl) for i, lvl in enumerate(levels) if i >= item.sla_level and now >= clock.moment(lvl["at"])]


def next_moment(item: WorkItem) -> datetime | None:
    """When the scan must look at `item` next: its next SLA state change or, with
    `features.escalation` on, policy level; None when nothing more can happen (no deadline,
    terminal, suspended, all fired)."""
    clock = clock_of(item)
    if clock is None or item.state not in OPEN_STATES or item.state == State.SUSPENDED:
        return None
    moments = []
    if item.sla_state in (SlaState.NONE, SlaState.ON_TRACK):
        moments.append(clock.moment(item.queue.at_risk_ratio))
    if item.sla_state != SlaState.BREACHED:
        moments.append(clock.due)
    levels = policy_of(item.queue)
    if wsconfig.get().features.escalation and item.sla_level < len(levels):
        moments.append(clock.moment(levels[item.sla_level]["at"]))
    return min(moments) if moments else None


def bookkeep(item: WorkItem, action: str, now: datetime) -> dict[str, Any]:
    """Keep `item`'s SLA fields in step with the change just made to it (own fields only, as
    a transition does); returns what the change's audit record adds (a moved deadline)."""
    data: dict[str, Any] = {}
    if action == "suspend":
        item.suspended_at = now
    elif action == "resume" and item.suspended_at is not None:
        clock = clock_of(item)
        if clock is not None:
            paused = clock.calendar.elapsed(item.suspended_at, now)
            if paused:
                before = item.due_at
                item.sla_started_at = clock.calendar.add(clock.start, paused)
                item.due_at = clock.calendar.add(clock.due, paused)
                data["due_at"] = [isoformat_z(before), isoformat_z(item.due_at)]
                data["sla_paused_seconds"] = int(paused.total_seconds())
        item.suspended_at = None
    elif action == "update":
        _new_deadline(item, now)
    if item.state in OPEN_STATES:
        item.sla_next_at = next_moment(item)
    else:
        item.sla_state = state_at(item, now)
        item.sla_next_at = None
    return data


_SLA_RANK = {SlaState.NONE: 0, SlaState.ON_TRACK: 1, SlaState.AT_RISK: 2, SlaState.BREACHED: 3}


def _new_deadline(item: WorkItem, now: datetime) -> None:
    """After an update that may have moved the deadline: the clock runs from now if it did not
    run; the SLA state moves back at once when the new deadline is further off (a breached item
    given more time is on track again), while a move forward (at risk, breached) is left to the
    SLA scan, which sla_next_at brings to the item at once, so its events and notifications go
    out as for any other item. Policy levels already fired stay fired (sla_level is kept)."""
    if item.due_at is None:
        item.sla_started_at = None
        item.sla_state = SlaState.NONE
        return
    if item.sla_started_at is None:
        item.sla_started_at = now
    current = item.sla_state if item.sla_state in _SLA_RANK and item.sla_state != SlaState.NONE else SlaState.ON_TRACK
    fresh = state_at(item, now)
    item.sla_state = fresh if _SLA_RANK.get(fresh, 0) < _SLA_RANK[current] else current


def start_clock(item: WorkItem, now: datetime) -> None:
    """A new item's SLA fields (its deadline already set)."""
    item.sla_started_at = now if item.due_at is not None else None
    item.sla_state = state_at(item, now)
    if item.sla_state == SlaState.BREACHED:  # created already past its deadline
        item.breached_at = now
    item.sla_next_at = next_moment(item)
