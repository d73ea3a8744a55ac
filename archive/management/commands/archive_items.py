"""`manage.py archive_items --older-than 90d [--batch 1000] [--dry-run]`."""

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from archive.services import archive_items
from config import context
from workitems.errors import ValidationFailed

UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_age(text: str) -> timedelta:
    """`90d`, `12h`, `30m`, `45s` (a whole number and a unit) as a timedelta."""
    match = re.fullmatch(r"([0-9]{1,7})([dhms])", text.strip())
    if not match:
        raise CommandError(f"--older-than: {text!r} is not an age like 90d, 12h, 30m or 45s")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = (
        "Move completed, failed and cancelled work items that ended longer ago than --older-than, with "
        "their audit records (hashes unchanged: audit_verify checks them in the archive), to the archive "
        "tables, --batch items per transaction (rows someone holds are skipped). Archived items stay "
        "readable by id (GET /api/v1/workitems/{id}, archived: true); restore_item brings one back."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, type=parse_age, help="age, e.g. 90d, 12h")
        parser.add_argument("--batch", type=int, default=1000, help="items per transaction (default 1000)")
        parser.add_argument("--dry-run", action="store_true", help="count what would move, change nothing")

    def handle(self, *args, older_than, batch, dry_run, **options):
        def progress(report):
            self.stdout.write(f"batch {report.batches}: {report.items} items, {report.records} audit records moved")

        try:
            with context.acting(channel="system"):
                report = archive_items(older_than=older_than, batch=batch, dry_run=dry_run, progress=progress)
        except ValidationFailed as exc:
            raise CommandError(str(exc)) from None
        verb = "would move" if dry_run else "moved"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {report.items} items and {report.records} audit records ended before {report.cutoff}"
                + ("" if dry_run else f" in {report.batches} batches")
            )
        )
