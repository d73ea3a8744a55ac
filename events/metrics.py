"""Prometheus metrics of event delivery.

Counters and histograms live in the process that does the work (the relay, the
webhook sender, the consumers: `--metrics-port` on their commands, or the Celery
worker). The backlog gauges are read from the database at scrape time by a
collector, so every process that serves /metrics reports the same, current numbers.
"""

from __future__ import annotations

import logging

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from events.models import Delivery, OutboxEvent

log = logging.getLogger(__name__)

OUTBOX_PUBLISHED = Counter("workstream_outbox_published_total", "Outbox events confirmed by the event bus")
OUTBOX_PUBLISH_FAILURES = Counter(
    "workstream_outbox_publish_failures_total", "Outbox events the event bus refused (nack, channel error)"
)
OUTBOX_DEAD_LETTERED = Counter(
    "workstream_outbox_dead_lettered_total", "Outbox events dead-lettered after maxPublishAttempts"
)
RELAY_BROKER_ERRORS = Counter("workstream_relay_broker_errors_total", "Batches not sent: event bus unavailable")
RELAY_BATCH_SECONDS = Histogram(
    "workstream_relay_batch_seconds",
    "Time to publish one batch with its confirms and mark it published",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_DELIVERIES = Counter(
    "workstream_webhook_deliveries_total", "Webhook and callback delivery attempts", ["kind", "outcome"]
)
WEBHOOK_LATENCY = Histogram(
    "workstream_webhook_delivery_seconds",
    "Time of one webhook/callback HTTP attempt",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SUBSCRIPTIONS_DISABLED = Counter(
    "workstream_webhook_subscriptions_disabled_total", "Subscriptions disabled after consecutive failures"
)
COMMANDS = Counter("workstream_inbound_commands_total", "Inbound commands by outcome", ["outcome"])
NOTIFICATIONS = Counter("workstream_notifications_total", "Events seen by the notification consumer", ["outcome"])


class OutboxCollector:
    """Backlog gauges, queried when scraped."""

    def collect(self):
        backlog = GaugeMetricFamily("workstream_outbox_backlog", "Outbox events not yet published (live)")
        oldest = GaugeMetricFamily(
            "workstream_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished outbox event"
        )
        dead = GaugeMetricFamily("workstream_outbox_dead_letters", "Dead-lettered outbox events awaiting replay")
        pending = GaugeMetricFamily("workstream_webhook_backlog", "Webhook/callback deliveries pending")
        try:
            values = outbox_stats()
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            log.warning("outbox metrics unavailable", exc_info=True)
            return
        backlog.add_metric([], values["backlog"])
        oldest.add_metric([], values["oldest_age_seconds"])
        dead.add_metric([], values["dead_lettered"])
        pending.add_metric([], values["webhook_backlog"])
        yield from (backlog, oldest, dead, pending)

    def describe(self):
        return []  # not described up front: collecting needs the database, which is not ready at import


def outbox_stats() -> dict:
    """Backlog, age of the oldest unpublished event, dead letters, pending webhook deliveries."""
    live = OutboxEvent.objects.filter(published_at__isnull=True, dead_lettered_at__isnull=True).aggregate(
        n=Count("id"), oldest=Min("occurred_at")
    )
    age = (timezone.now() - live["oldest"]).total_seconds() if live["oldest"] else 0.0
    return {
        "backlog": live["n"],
        "oldest_age_seconds": max(age, 0.0),
        "dead_lettered": OutboxEvent.objects.filter(dead_lettered_at__isnull=False).count(),
        "webhook_backlog": Delivery.objects.filter(status=Delivery.PENDING).count(),
    }


_registered = False


def register_collector() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(OutboxCollector())
        _registered = True
