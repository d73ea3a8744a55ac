"""`manage.py stats_rebuild`: recount the statistics from the work items."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from stats import rollup


class Command(BaseCommand):
    help = (
        "Recount the real-time counters (open items per queue, state, SLA state and user; their ages) from "
        "the work items, e.g. after a load that bypassed the triggers (TRUNCATE, session_replication_role = "
        "replica). With --history also the hourly roll-ups, from the items' own times: items deleted since "
        "are lost, an item's creation counts in its current queue. Writers wait while it runs."
    )

    def add_arguments(self, parser):
        parser.add_argument("--history", action="store_true", help="recompute the hourly tables too")

    def handle(self, *args, history=False, **options):
        rollup.rebuild(history=history)
        self.stdout.write("statistics recounted" + (" (with the hourly history)" if history else ""))
