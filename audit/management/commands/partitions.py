from django.core.management.base import BaseCommand, CommandError

from config import partitions, wsconfig


class Command(BaseCommand):
    help = (
        "Monthly partitions of the audit trail and the outbox (PostgreSQL): create this month's and the next "
        "--months-ahead months' where missing, and drop each outbox partition whose month ended more than "
        "--retention-days ago (relay.retainPublishedDays) once none of its events is unpublished (a dead letter "
        "counts until it is older than the retention) and none has a webhook delivery pending. Audit partitions "
        "are never dropped. Celery beat runs it every 6 hours (partitions-maintain)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
        parser.add_argument("--months-ahead", type=int, default=partitions.MONTHS_AHEAD)
        parser.add_argument("--retention-days", type=int, default=None)

    def handle(self, *args, dry_run=False, months_ahead=partitions.MONTHS_AHEAD, retention_days=None, **options):
        retention = retention_days or wsconfig.get().relay.retainPublishedDays
        if not 0 <= months_ahead <= 24 or retention < 1:
            raise CommandError("--months-ahead is 0 to 24 and --retention-days at least 1")
        report = partitions.maintain(months_ahead=months_ahead, retention_days=retention, dry_run=dry_run)
        if not report:
            self.stdout.write("no partitioned tables here (PostgreSQL only)")
        for table, name, action, detail in report:
            self.stdout.write(f"{table:20} {name:32} {action:13} {detail}".rstrip())
        if any(row[2] == "failed" for row in report):
            raise CommandError("some partitions could not be created or dropped (above)")
