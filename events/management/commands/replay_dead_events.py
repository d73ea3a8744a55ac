"""Put dead-lettered outbox events back in line for the relay."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from events.models import OutboxEvent
from events.relay import replay_dead_events


class Command(BaseCommand):
    help = "Replay dead-lettered outbox events (all, by id, or by event type)."

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", type=int, help="outbox ids (default: all dead-lettered)")
        parser.add_argument("--event-type", default=None)
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args, **opts):
        qs = OutboxEvent.objects.filter(dead_lettered_at__isnull=False, published_at__isnull=True)
        if opts["ids"]:
            qs = qs.filter(id__in=opts["ids"])
        if opts["event_type"]:
            qs = qs.filter(event_type=opts["event_type"])
        if opts["dry_run"]:
            for ev in qs.order_by("id")[:1000]:
                self.stdout.write(
                    f"{ev.id}\t{ev.event_type}\t{ev.aggregate_type}:{ev.aggregate_id}#{ev.sequence}\t{ev.last_error}"
                )
            self.stdout.write(f"{qs.count()} dead-lettered event(s) would be replayed")
            return
        if opts["ids"] and qs.count() != len(set(opts["ids"])):
            raise CommandError("some ids are not dead-lettered events")
        n = replay_dead_events(ids=opts["ids"] or None, event_type=opts["event_type"])
        self.stdout.write(f"replaying {n} event(s)")
