"""The dashboard's figures, behind one small interface.

The maintained counters (the `stats` app) are to serve these; until `stats.selectors` is
there, this module computes them from the work-item table with grouped queries over the
open-state partial indexes. The dashboard and the queue page call only the four functions
below, so switching them over is this module's business alone.

Every function takes the queues to count (already narrowed to what the caller may see:
`workitems.queues.queue_list_for`) and never widens them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db.models import Count, F, Min, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from directory.models import Department, Profile
from workitems.models import HELD_STATES, OPEN_STATES, Queue, SlaState, State, WorkItem

User = get_user_model()

UNASSIGNED_STATES = (State.CREATED, State.OFFERED)
# The age distribution's buckets: (label, upper bound in seconds; None = no bound).
AGE_BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("< 1 h", 3600),
    ("1–4 h", 4 * 3600),
    ("4–24 h", 24 * 3600),
    ("1–3 d", 3 * 86400),
    ("3–7 d", 7 * 86400),
    ("> 7 d", None),
)


def _ids(queues: Sequence[Queue]) -> list[int]:
    return [q.pk for q in queues]


def queue_figures(*, queues: Sequence[Queue], window: timedelta, now: datetime | None = None) -> dict[int, dict]:
    """Per queue id: the open items by state, unassigned, overdue, at risk, breached, the
    oldest open item's age, max_open and utilization (open / max_open), and over `window`:
    created, completed, and SLA compliance (share of the items completed in the window that
    had a deadline and met it; None when none had)."""
    now = now or timezone.now()
    ids = _ids(queues)
    figures = {
        q.pk: {
            "open": 0,
            "unassigned": 0,
            "assigned": 0,
            "in_progress": 0,
            "suspended": 0,
            "overdue": 0,
            "at_risk": 0,
            "breached": 0,
            "oldest_age_seconds": None,
            "max_open": q.max_open,
            "utilization": None,
            "created": 0,
            "completed": 0,
            "sla_compliance": None,
        }
        for q in queues
    }
    open_rows = (
        WorkItem.objects.filter(queue_id__in=ids, state__in=OPEN_STATES)
        .values("queue_id")
        .annotate(
            open=Count("id"),
            unassigned=Count("id", filter=Q(state__in=UNASSIGNED_STATES)),
            assigned=Count("id", filter=Q(state=State.ASSIGNED)),
            in_progress=Count("id", filter=Q(state=State.IN_PROGRESS)),
            suspended=Count("id", filter=Q(state=State.SUSPENDED)),
            overdue=Count("id", filter=Q(due_at__lt=now)),
            at_risk=Count("id", filter=Q(sla_state=SlaState.AT_RISK)),
            breached=Count("id", filter=Q(sla_state=SlaState.BREACHED)),
            oldest=Min("created_at"),
        )
        .order_by()
    )
    for row in open_rows:
        f = figures[row["queue_id"]]
        for key in ("open", "unassigned", "assigned", "in_progress", "suspended", "overdue", "at_risk", "breached"):
            f[key] = row[key]
        f["oldest_age_seconds"] = int((now - row["oldest"]).total_seconds()) if row["oldest"] else None
    since = now - window
    created = (
        WorkItem.objects.filter(queue_id__in=ids, created_at__gte=since).values("queue_id").annotate(n=Count("id"))
    )
    for row in created.order_by():
        figures[row["queue_id"]]["created"] = row["n"]
    done = (
        WorkItem.objects.filter(queue_id__in=ids, state=State.COMPLETED, completed_at__gte=since)
        .values("queue_id")
        .annotate(
            n=Count("id"),
            with_due=Count("id", filter=Q(due_at__isnull=False)),
            on_time=Count("id", filter=Q(due_at__isnull=False, completed_at__lte=F("due_at"))),
        )
        .order_by()
    )
    for row in done:
        f = figures[row["queue_id"]]
        f["completed"] = row["n"]
        f["sla_compliance"] = row["on_time"] / row["with_due"] if row["with_due"] else None
    for f in figures.values():
        if f["max_open"]:
            f["utilization"] = f["open"] / f["max_open"]
    return figures


def user_figures(*, queues: Sequence[Queue], department=None) -> list[dict]:
    """Per person who holds open items in `queues` or is a member of one of them (its
    candidate groups): open items held there against their capacity (None = no limit),
    and whether they are available. `department` keeps its members (and its sub-departments')."""
    ids = _ids(queues)
    held = dict(
        WorkItem.objects.filter(queue_id__in=ids, state__in=HELD_STATES, assignee__isnull=False)
        .values_list("assignee_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    members = User.objects.filter(is_active=True).filter(Q(pk__in=held.keys()) | Q(groups__workstream_queues__in=ids))
    if department is not None:
        members = members.filter(workstream_profile__department_id__in=department_ids(department))
    profiles = {p.user_id: p for p in Profile.objects.filter(user__in=members)}
    now = timezone.now()
    rows = []
    for user in members.distinct().order_by("username")[:100]:
        profile = profiles.get(user.pk)
        rows.append(
            {
                "user": user.username,
                "open": held.get(user.pk, 0),
                "capacity": profile.capacity if profile else None,
                "available": not (profile and profile.is_out_of_office(now)),
            }
        )
    return rows


def department_ids(department) -> list[int]:
    """The department and every department below it."""
    found, frontier = {department.pk}, [department.pk]
    while frontier:
        frontier = list(Department.objects.filter(parent_id__in=frontier).values_list("pk", flat=True))
        frontier = [d for d in frontier if d not in found]
        found.update(frontier)
    return sorted(found)


def timeseries(*, metric: str, queues: Sequence[Queue], since: datetime, now: datetime | None = None) -> list[dict]:
    """Items `created` or `completed` per hour from `since` (its hour) to now: [{"start", "count"}],
    every hour present (zero when nothing happened)."""
    now = now or timezone.now()
    field = {"created": "created_at", "completed": "completed_at"}[metric]
    qs = WorkItem.objects.filter(queue_id__in=_ids(queues), **{f"{field}__gte": since})
    if metric == "completed":
        qs = qs.filter(state=State.COMPLETED)
    counts = dict(
        qs.annotate(hour=TruncHour(field))
        .values_list("hour")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("hour", "n")
    )
    start = since.replace(minute=0, second=0, microsecond=0)
    out = []
    while start <= now:
        out.append({"start": start, "count": counts.get(start, 0)})
        start += timedelta(hours=1)
    return out


def age_distribution(*, queues: Sequence[Queue], now: datetime | None = None) -> list[dict]:
    """Open items by age (time since created), in AGE_BUCKETS: [{"label", "count"}]."""
    now = now or timezone.now()
    aggregates = {}
    lower = 0
    for label, upper in AGE_BUCKETS:
        condition = Q(created_at__lte=now - timedelta(seconds=lower))
        if upper is not None:
            condition &= Q(created_at__gt=now - timedelta(seconds=upper))
        aggregates[label] = Count("id", filter=condition)
        lower = upper or lower
    row = WorkItem.objects.filter(queue_id__in=_ids(queues), state__in=OPEN_STATES).aggregate(
        **{f"b{i}": agg for i, agg in enumerate(aggregates.values())}
    )
    return [{"label": label, "count": row[f"b{i}"] or 0} for i, label in enumerate(aggregates)]
