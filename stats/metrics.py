"""Prometheus gauges of the queues, read from the maintained counters when scraped.

Queue depth, capacity and SLA figures are the statistics API's (`stats.selectors.queue_figures`:
counters plus pending deltas in one statement, the same cost at 10 thousand and 10 million
items), so every process that serves /metrics reports the same, current numbers, like the
outbox gauges (events/metrics.py). Inactive queues are left out.
"""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily

from stats.selectors import queue_figures
from workitems.models import Queue

log = logging.getLogger(__name__)

# (metric name, help, the queue_figures key it reports); a queue whose figure is None (no
# max_open, nothing completed with a deadline in the window) gets no sample.
QUEUE_GAUGES = (
    ("workstream_queue_depth", "Open work items in the queue (every open state)", "open"),
    ("workstream_queue_unassigned", "Open work items held by nobody", "unassigned"),
    ("workstream_queue_capacity", "The queue's max_open (queues with a limit only)", "max_open"),
    ("workstream_queue_utilization_ratio", "Open items / max_open (queues with a limit only)", "utilization"),
    ("workstream_queue_sla_at_risk", "Open work items at risk of missing their deadline", "at_risk"),
    ("workstream_queue_sla_breached", "Open work items past their deadline", "breached"),
    ("workstream_queue_oldest_item_age_seconds", "Age of the queue's oldest open item", "oldest_age_seconds"),
    (
        "workstream_queue_sla_compliance_ratio",
        "Share of the items completed in the last 24 h with a deadline that met it",
        "sla_compliance",
    ),
)


class QueueCollector:
    """One gauge family per figure, one sample per active queue (label `queue`, its name)."""

    def collect(self):
        try:
            ids = list(Queue.objects.filter(active=True).values_list("id", flat=True))
            figures = queue_figures(ids)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            log.warning("queue metrics unavailable", exc_info=True)
            return
        for name, documentation, key in QUEUE_GAUGES:
            family = GaugeMetricFamily(name, documentation, labels=["queue"])
            for fig in figures.values():
                if fig[key] is not None:
                    family.add_metric([fig["queue"]], fig[key])
            yield family

    def describe(self):
        return []  # not described up front: collecting needs the database, which is not ready at import
