"""Relay the outbox to RabbitMQ (and queue/send webhooks) as a long-running process."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from events import relay
from events.management.commands._common import serve_metrics, stop_on_signals
from events.runner import RelayProcess


class Command(BaseCommand):
    help = "Publish outbox events to the event bus with publisher confirms; send webhook deliveries."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=None, help="default: performance.outboxBatchSize")
        parser.add_argument("--workers", type=int, default=None, help="relay threads (default: relay.workers)")
        parser.add_argument("--until-empty", action="store_true", help="exit when nothing is due")
        parser.add_argument("--no-webhooks", action="store_true", help="leave webhook sending to Celery")
        parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port")

    def handle(self, *args, **opts):
        if not relay.publishing_enabled():
            raise CommandError("features.events.publish is off: nothing to relay (outbox rows are kept)")
        serve_metrics(opts["metrics_port"])
        process = RelayProcess(
            batch_size=opts["batch_size"],
            workers=opts["workers"],
            webhooks_enabled=not opts["no_webhooks"],
            stop=stop_on_signals(),
        )
        published = process.run(until_empty=opts["until_empty"])
        self.stdout.write(f"published {published} event(s)")
