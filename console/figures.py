"""The dashboard's figures, behind one small interface: the maintained statistics
(`stats.selectors`, counters written in each change's transaction), in the shapes the
console's templates and charts use. A dashboard costs the same at 10 thousand and at 10
million items.

Every function takes the queues to count, already narrowed to what the caller may see
(`workitems.queues.queue_list_for`), and never widens them.

Every open dashboard polls its figures every 2–3 s, so the figures are shared for FIGURES_TTL
in the cache (Redis in every deployment): per queue and window for the tiles, per set of queues
for the charts; never per caller (the caller's queues are chosen before the cache is read, and
only theirs are read from it). However many dashboards watch a queue, its figures are read from
the counters once a second at most.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from directory.models import Department, Profile
from stats import selectors as stats
from workitems.models import Queue

# Seconds a figure is shared. A change shows on a dashboard within this plus its poll (2–3 s):
# the console promises 5 s.
FIGURES_TTL = 1


def _ids(queues: Sequence[Queue]) -> list[int]:
    return [q.pk for q in queues]


def queue_figures(*, queues: Sequence[Queue], window: timedelta) -> dict[int, dict]:
    """Per queue id, stats.selectors.queue_figures (open by state, unassigned, at risk,
    breached, oldest age, max_open and utilization; created, completed and SLA compliance over
    `window`), plus `overdue`: the open items past their deadline, which the SLA scan marks
    breached."""
    keys = {qid: f"console:queue:{qid}:{stats.window_name(window)}" for qid in _ids(queues)}
    found = cache.get_many(list(keys.values()))
    figures = {qid: found[key] for qid, key in keys.items() if key in found}
    missing = [qid for qid in keys if qid not in figures]
    if missing:
        fresh = stats.queue_figures(missing, window)
        for f in fresh.values():
            f["overdue"] = f["breached"]
        cache.set_many({keys[qid]: f for qid, f in fresh.items()}, FIGURES_TTL)
        figures.update(fresh)
    return figures


def shared(kind: str, queue_ids: Iterable[int], compute: Callable[[], Any]) -> Any:
    """`compute()` (figures of exactly the queues `queue_ids`, nothing of the caller's own),
    shared by every caller of the same queues for FIGURES_TTL."""
    digest = hashlib.blake2b(",".join(map(str, sorted(set(queue_ids)))).encode(), digest_size=16).hexdigest()
    key = f"console:{kind}:{digest}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, FIGURES_TTL)
    return value


def user_figures(*, queues: Sequence[Queue], department: Department | None = None) -> list[dict]:
    """Per person of `queues` (stats.selectors.user_figures: open items held there, capacity,
    availability); with `department`, only its members and its sub-departments'."""
    return in_department(stats.user_figures(_ids(queues)), department)


def in_department(rows: list[dict], department: Department | None) -> list[dict]:
    """The rows (each with a `user`) of the members of `department` and its sub-departments'."""
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


def charts(*, queues: Sequence[Queue], department: Department | None = None) -> dict[str, list[dict]]:
    """The dashboard's charts: `created` and `completed` per hour of the last 24 h (timeseries),
    `users` (user_figures) and `ages` (age_distribution); shared for FIGURES_TTL as one entry
    (one cache round trip), the department chosen after."""

    def compute():
        since = timezone.now() - timedelta(hours=23)
        return {
            **{m: timeseries(metric=m, queues=queues, since=since) for m in ("created", "completed")},
            "users": stats.user_figures(_ids(queues)),
            "ages": age_distribution(queues=queues),
        }

    found = shared("charts", _ids(queues), compute)
    return {**found, "users": in_department(found["users"], department)}


def age_distribution(*, queues: Sequence[Queue]) -> list[dict]:
    """Open items by age (to the hour), in stats.selectors.AGE_BUCKETS: [{"label", "count"}]."""
    return [{"label": b["bucket"], "count": b["count"]} for b in stats.age_distribution(_ids(queues))]
