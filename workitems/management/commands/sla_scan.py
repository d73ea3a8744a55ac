"""`manage.py sla_scan`: run the SLA scan once (what the Celery beat job does every `sla.scanSeconds`)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from config import wsconfig
from config.context import acting
from workitems import services


class Command(BaseCommand):
    help = "Apply the SLA states and escalation-policy levels that have come due (once)."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=None, help="items per batch (default: sla.batchSize)")

    def handle(self, *args, batch=None, **options):
        with acting(channel="system"):
            changed = services.sla_scan(batch=batch or wsconfig.get().sla.batchSize)
        self.stdout.write(f"{changed} work item(s) changed")
