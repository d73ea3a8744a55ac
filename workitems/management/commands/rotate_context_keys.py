"""`manage.py rotate_context_keys [--batch N] [--dry-run] [--json]`: every encrypted context value
sealed under the key ring's primary key (README, "Encrypted context keys")."""

import json

from django.core.management.base import BaseCommand, CommandError

from workitems import services
from workitems.errors import EncryptionUnavailable


class Command(BaseCommand):
    help = (
        "Re-encrypt the encrypted context keys of live and archived work items under the first key of "
        "WORKSTREAM_CONTEXT_KEYS (values sealed with another key of the ring, and clear values of keys their "
        "queue lists in encrypted_keys), in batches of one transaction each, each batch audited as a system "
        "change without the values. Run it after putting a new key first, before removing the old one."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=500, help="items per transaction (default 500)")
        parser.add_argument("--dry-run", action="store_true", help="count what would change, write nothing")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON")

    def handle(self, *args, batch, dry_run=False, as_json=False, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        try:
            report = services.context_keys_rotate(batch_size=batch, dry_run=dry_run)
        except EncryptionUnavailable as exc:
            raise CommandError(exc.detail) from None
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {len(report.live_items)} live and {len(report.archived_items)} archived items "
                f"under key {report.key_id} ({report.batches} batches)"
            )
        )
