"""The daily summary: per active queue, to its supervisors through its channels, once a day.

A beat job (`notifications.daily_summary`, every `notifications.summary.checkSeconds`)
looks whether `summary.timeOfDay` has passed today in `summary.timeZone`; if so, each queue
not yet summarised for yesterday gets its `QueueSummary` row (open, overdue, breached
yesterday, completed yesterday and how many by their deadline: the SLA compliance) and its
notifications, in one transaction. The row is unique per (queue, day), so a second run, or
two at once, summarise once; the notifications have an event id derived from (queue, day),
so each recipient and channel is told once too. A queue with nothing open and nothing done
or breached that day is recorded but tells nobody. A beat that was down at the time of
day sends when it comes back, the same day.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from config import wsconfig
from notifications import models as m
from notifications.notifier import write
from notifications.triggers import Told, active_users, supervisors_of
from workitems.models import OPEN_STATES, Queue, State, WorkItem

NAMESPACE = uuid.UUID("6f1d3f0e-6a43-4b8e-9d0c-5d1f3b0a7c21")


def event_id(queue: str, day: date) -> uuid.UUID:
    """The notifications' event id of one queue's summary of one day (the same on every run)."""
    return uuid.uuid5(NAMESPACE, f"daily-summary:{queue}:{day.isoformat()}")


def day_due(now: datetime) -> date | None:
    """The day to summarise at `now` (yesterday, in the summary's zone), or None before the
    time of day or with the summary off."""
    cfg = wsconfig.get().notifications.summary
    if not cfg.enabled:
        return None
    local = now.astimezone(ZoneInfo(cfg.timeZone))
    hour, minute = (int(p) for p in cfg.timeOfDay.split(":"))
    if (local.hour, local.minute) < (hour, minute):
        return None
    return local.date() - timedelta(days=1)


def figures(queue: Queue, day: date, now: datetime) -> dict[str, int]:
    """A queue's figures: open and overdue now; breached and completed (and met) on `day`."""
    zone = ZoneInfo(wsconfig.get().notifications.summary.timeZone)
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    held = WorkItem.objects.filter(queue=queue, state__in=OPEN_STATES).aggregate(
        open=Count("id"), overdue=Count("id", filter=Q(due_at__lt=now))
    )
    done = WorkItem.objects.filter(
        queue=queue, state=State.COMPLETED, completed_at__gte=start, completed_at__lt=end, due_at__isnull=False
    ).aggregate(completed=Count("id"), met=Count("id", filter=Q(completed_at__lte=F("due_at"))))
    breached = WorkItem.objects.filter(queue=queue, breached_at__gte=start, breached_at__lt=end).count()
    return {**held, **done, "breached": breached}


def told(queue: Queue, s: m.QueueSummary) -> Told:
    compliance = (
        f"SLA compliance {s.sla_compliance:.1%} ({s.met} of {s.completed} completed by their deadline)"
        if s.completed
        else "nothing with a deadline completed"
    )
    body = f"Queue {queue.name}: {s.open} open, {s.overdue} overdue; on {s.day}: {s.breached} breached, {compliance}"
    return Told(
        trigger=m.DAILY_SUMMARY,
        users=active_users(supervisors_of(queue)),
        title=f"Daily summary: {queue.name} on {s.day}",
        body=body,
        work_item_id=None,
        queue=queue.name,
    )


def summarise(*, now: datetime | None = None) -> int:
    """Summarise every active queue not yet summarised for the day due; returns how many."""
    now = now or timezone.now()
    day = day_due(now)
    if day is None:
        return 0
    done = set(m.QueueSummary.objects.filter(day=day).values_list("queue", flat=True))
    count = 0
    for queue in Queue.objects.filter(active=True).exclude(name__in=done).order_by("name"):
        with transaction.atomic():
            # A racing run waits here on the unique (queue, day) and then finds the row.
            summary, created = m.QueueSummary.objects.get_or_create(
                queue=queue.name, day=day, defaults=figures(queue, day, now)
            )
            if not created:
                continue
            count += 1
            if summary.open or summary.breached or summary.completed:
                write(event_id(queue.name, day), told(queue, summary))
    return count
