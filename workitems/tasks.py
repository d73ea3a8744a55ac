"""Celery jobs of work items: they take ids (or nothing) and call the service layer."""

from __future__ import annotations

from celery import shared_task

from config import wsconfig
from config.context import acting
from workitems import services


@shared_task(name="workitems.expire_reservations")
def expire_reservations() -> int:
    """Lapsed reservations move to the next candidate (beat, every 10 s)."""
    with acting(channel="system"):
        return services.work_items_expire_reservations()


@shared_task(name="workitems.sla_scan")
def sla_scan() -> int:
    """The SLA scan (beat, every `sla.scanSeconds`): states and escalation levels that came due."""
    with acting(channel="system"):
        return services.sla_scan(batch=wsconfig.get().sla.batchSize)


@shared_task(name="workitems.capacity_check")
def capacity_check() -> int:
    """Queues' capacity (beat, every minute): alert above 90% of max_open, move the excess to
    the overflow queue. Returns how many items moved."""
    with acting(channel="system"):
        return sum(len(r["moved"]) for r in services.queues_capacity_check().values())
