"""Test data built through the real models and the service layer (no state is set by hand)."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from directory.roles import role_group_name
from workitems import services
from workitems.models import Lifecycle, Queue, WorkItem

_seq = itertools.count(1)


def group(name: str) -> Group:
    return Group.objects.get_or_create(name=name)[0]


def user(username: str, *, roles=(), groups=(), **fields):
    u = get_user_model().objects.create_user(username=username, password="pw-" + username, **fields)
    u.groups.add(*[group(role_group_name(r)) for r in roles], *groups)
    return u


def lifecycle(name: str = "custom", **fields) -> Lifecycle:
    lc = Lifecycle(name=name, **fields)
    lc.full_clean()
    lc.save()
    return lc


def queue(name: str, *, groups=(), **fields) -> Queue:
    q = Queue.objects.create(name=name, **fields)
    q.candidate_groups.set(groups)
    return q


def item_body(queue: Queue, **overrides) -> dict:
    n = next(_seq)
    body = {"workflow_id": f"wf-{n}", "run_id": f"run-{n}", "task_name": "review", "queue": queue.name}
    body.update(overrides)
    return body


def item(*, actor, queue: Queue, **overrides) -> WorkItem:
    return services.work_item_create(actor=actor, data=item_body(queue, **overrides))


def unrouted_item(*, queue: Queue, created_by=None, **fields) -> WorkItem:
    """A work item in CREATED, saved straight to the table.

    The ONLY place in the suite where a work item's state comes from anything but a
    service: `work_item_create` routes every new item at once (OFFERED, or ASSIGNED when
    it names an assignee), so CREATED is reachable only by constructing a row. The row
    has no audit record and no outbox event (it was never "created" by a command).
    """
    n = next(_seq)
    values = {"workflow_id": f"wf-{n}", "run_id": f"run-{n}", "task_name": "review"}
    values.update(fields)
    return WorkItem.objects.create(queue=queue, created_by=created_by, **values)


# The default lifecycle's table (WorkItem's docstring; docs/api.md "Actions"), as data:
# action → {from: to}. `resume` goes back to the state the item was suspended from
# (RESUME_STATE stands for it); `escalate` keeps the state. `set_sub_status` exists only
# in lifecycles that name sub-statuses, so the default lifecycle allows it nowhere;
# reservations (push with acceptance) hold an OFFERED item for one user
# ("OFFERED:reserved" below), who accepts (→ ASSIGNED) or rejects (→ OFFERED).
# `reserve` is applied by distribution only (it has no command of its own).
RESUME_STATE = "<the state it left>"
RESERVED = "OFFERED:reserved"
_OPEN = ("CREATED", "OFFERED", RESERVED, "ASSIGNED", "IN_PROGRESS", "SUSPENDED")
DEFAULT_TRANSITIONS: dict[str, dict[str, str]] = {
    "offer": {"CREATED": "OFFERED"},
    "assign": {"CREATED": "ASSIGNED", "OFFERED": "ASSIGNED", RESERVED: "ASSIGNED"},
    "claim": {"OFFERED": "ASSIGNED", RESERVED: "ASSIGNED"},  # a reserved item: by its reservee only
    "release": {"ASSIGNED": "OFFERED"},
    "start": {"ASSIGNED": "IN_PROGRESS"},
    "complete": {"IN_PROGRESS": "COMPLETED"},
    "fail": {"IN_PROGRESS": "FAILED"},
    "suspend": {"OFFERED": "SUSPENDED", RESERVED: "SUSPENDED", "ASSIGNED": "SUSPENDED", "IN_PROGRESS": "SUSPENDED"},
    "resume": {"SUSPENDED": RESUME_STATE},
    "delegate": {"ASSIGNED": "ASSIGNED", "IN_PROGRESS": "ASSIGNED"},
    "escalate": {s: s.split(":")[0] for s in _OPEN},
    "cancel": {s: "CANCELLED" for s in _OPEN},
    "skip": {},  # only an `optional` item may be skipped (then as cancel)
    "forward": {"OFFERED": "OFFERED", RESERVED: "OFFERED", "ASSIGNED": "OFFERED"},
    "set_sub_status": {},
    "reserve": {"CREATED": "OFFERED", "OFFERED": "OFFERED", RESERVED: "OFFERED"},
    "update": {s: s.split(":")[0] for s in _OPEN},  # new terms (priority, dates) keep the state
    "sla_at_risk": {s: s.split(":")[0] for s in _OPEN},  # the SLA scan's steps keep the state
    "sla_breach": {s: s.split(":")[0] for s in _OPEN},
    "accept": {RESERVED: "ASSIGNED"},
    "reject": {RESERVED: "OFFERED"},
    # to another queue: work nobody has started is offered there afresh, started work keeps its holder
    "move": {
        "CREATED": "OFFERED",
        "OFFERED": "OFFERED",
        RESERVED: "OFFERED",
        "ASSIGNED": "OFFERED",
        "IN_PROGRESS": "IN_PROGRESS",
        "SUSPENDED": "SUSPENDED",
    },
}


def state_key(row) -> str:
    """The row's key into DEFAULT_TRANSITIONS: its state, or RESERVED for a reserved OFFERED item."""
    state = row["state"] if isinstance(row, dict) else row.state
    reserved = row["reserved_for_id"] if isinstance(row, dict) else row.reserved_for_id
    return RESERVED if state == "OFFERED" and reserved is not None else state


def item_in(state: str, *, queue: Queue, creator, worker, supervisor, suspended_from: str = "IN_PROGRESS") -> WorkItem:
    """An item driven into `state` through the services (CREATED: see `unrouted_item`).

    `creator` creates it, `worker` claims/starts/finishes it, `supervisor` suspends it
    (from `suspended_from`). RESERVED: created for `worker` in a queue with a
    reservation timeout. Returns the item as the last service returned it.
    """
    if state == "CREATED":
        return unrouted_item(queue=queue, created_by=creator)
    if state == RESERVED:
        assert queue.reservation_timeout, "a reserved item needs a queue with a reservation timeout"
        it = item(actor=creator, queue=queue, assignee=worker.username)
        assert (it.state, it.reserved_for_id) == ("OFFERED", worker.pk)
        return it
    it = item(actor=creator, queue=queue)
    if state == "OFFERED":
        return it
    if state == "CANCELLED":
        return services.work_item_cancel(item_id=it.pk, actor=creator, reason="not needed")
    if state == "SUSPENDED":
        if suspended_from != "OFFERED":
            it = item_in(suspended_from, queue=queue, creator=creator, worker=worker, supervisor=supervisor)
        return services.work_item_suspend(item_id=it.pk, actor=supervisor, reason="on hold")
    it = services.work_item_claim(item_id=it.pk, actor=worker)
    if state == "ASSIGNED":
        return it
    it = services.work_item_start(item_id=it.pk, actor=worker)
    if state == "IN_PROGRESS":
        return it
    if state == "COMPLETED":
        return services.work_item_complete(item_id=it.pk, actor=worker, result={"approved": True})
    if state == "FAILED":
        return services.work_item_fail(item_id=it.pk, actor=worker, reason="cannot be done")
    raise ValueError(f"unknown state {state!r}")


def observed(item_id: int) -> dict:
    """Everything a command may change about one item: its row, its audit and outbox rows."""
    from audit.models import AuditRecord
    from events.models import OutboxEvent

    row = WorkItem.objects.filter(pk=item_id).values().get()
    return {
        "row": row,
        "state": row["state"],
        "version": row["version"],
        "audit": AuditRecord.objects.filter(work_item_id=item_id).count(),
        "outbox": OutboxEvent.objects.filter(aggregate_type="workitem", aggregate_id=str(item_id)).count(),
    }


def copies(item: WorkItem, n: int, *, vary: dict[str, str] | None = None) -> None:
    """`n` copies of `item` in one set-based INSERT (each with its own run id; `vary`: column →
    SQL expression of the series number g), then ANALYZE, as autovacuum keeps the statistics:
    for the tests that read a statement's plan at a size."""
    from django.db import connection

    exprs = {"run_id": "w.run_id || '-' || g", **(vary or {})}
    cols = [f.column for f in WorkItem._meta.concrete_fields if not f.primary_key]
    picked = [exprs.get(c, f"w.{c}") for c in cols]
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO workitems_workitem ({', '.join(cols)}) "  # noqa: S608 - the model's own columns
            f"SELECT {', '.join(picked)} FROM workitems_workitem w, generate_series(1, %s) g WHERE w.id = %s",
            [n, item.pk],
        )
        cur.execute("ANALYZE")
