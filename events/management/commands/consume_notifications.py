"""The notification consumer: record every event on the exchange once, for debugging the flow."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from config import wsconfig
from events.consumers import NotificationConsumer
from events.management.commands._common import serve_metrics, stop_on_signals


class Command(BaseCommand):
    help = "Consume eventBus.notificationQueue (bound to the exchange) and record each event once."

    def add_arguments(self, parser):
        parser.add_argument("--max-idle", type=float, default=None, help="exit after this many idle seconds")
        parser.add_argument("--metrics-port", type=int, default=None)

    def handle(self, *args, **opts):
        if not wsconfig.get().features.events.subscribe:
            raise CommandError("features.events.subscribe is off: not consuming events")
        serve_metrics(opts["metrics_port"])
        handled = NotificationConsumer(stop=stop_on_signals()).run(max_idle=opts["max_idle"])
        self.stdout.write(f"handled {handled} message(s)")
