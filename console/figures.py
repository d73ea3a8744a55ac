"""The dashboard's figures, behind one small interface: the maintained statistics
(`stats.selectors`, counters written in each change's transaction), in the shapes the
console's templates and charts use. A dashboard costs the same at 10 thousand and at 10
million items.

Every function takes the queues to count, already narrowed to what the caller may see
(`workitems.queues.queue_list_for`), and never widens them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from directory.models import Department, Profile
from stats import selectors as stats
from workitems.models import Queue


def _ids(queues: Sequence[Queue]) -> list[int]:
    return [q.pk for q in queues]


def queue_figures(*, queues: Sequence[Queue], window: timedelta) -> dict[int, dict]:
    """Per queue id, stats.selectors.queue_figures (open by state, unassigned, at risk,
    breached, oldest age, max_open and utilization; created, completed and SLA compliance over
    `window`), plus `overdue`: the open items past their deadline, which the SLA scan marks
    breached."""
    figures = stats.queue_figures(_ids(queues), window)
    for f in figures.values():
        f["overdue"] = f["breached"]
    return figures


def user_figures(*, queues: Sequence[Queue], department: Department | None = None) -> list[dict]:
    """Per person of `queues` (stats.selectors.user_figures: open items held there, capacity,
    availability); with `department`, only its members and its sub-departments'."""
    rows = stats.user_figures(_ids(queues))
    if department is None:
        return rows
    members = set(
        Profile.objects.filter(department_id__in=department_ids(department)).values_list("user__username", flat=True)
    )
    return [r for r in rows if r["user"] in members]


def department_ids(department: Department) -> list[int]:
    """The department and every department below it."""
    found, frontier = {department.pk}, [department.pk]
    while frontier:
        below = Department.objects.filter(parent_id__in=frontier).values_list("pk", flat=True)
        frontier = [d for d in below if d not in found]
        found.update(frontier)
    return sorted(found)


def timeseries(*, metric: str, queues: Sequence[Queue], since: datetime) -> list[dict]:
    """Items `created` or `completed` per hour from the hour of `since` to now, every hour
    present: [{"start" (ISO 8601, UTC), "label" ("HH:00"), "count"}]."""
    points = stats.timeseries(metric, _ids(queues), since=since)
    return [{**p, "label": p["start"][11:16]} for p in points]


def age_distribution(*, queues: Sequence[Queue]) -> list[dict]:
    """Open items by age (to the hour), in stats.selectors.AGE_BUCKETS: [{"label", "count"}]."""
    return [{"label": b["bucket"], "count": b["count"]} for b in stats.age_distribution(_ids(queues))]
