"""`manage.py stats_rollup`: fold the pending deltas once (what the beat job does every few seconds)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from stats import rollup


class Command(BaseCommand):
    help = "Fold the statistics' pending deltas into the counters and hourly tables (once)."

    def handle(self, *args, **options):
        self.stdout.write(f"{rollup.rollup()} delta(s) folded")
