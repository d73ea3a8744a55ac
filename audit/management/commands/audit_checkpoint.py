import json

from django.core.management.base import BaseCommand, CommandError

from audit.services import CHECKPOINT_KEEP, audit_checkpoint
from config.timefmt import isoformat_z


class Command(BaseCommand):
    help = (
        "Sign every audit stream's head (HMAC-SHA256 with AUDIT_CHECKPOINT_KEY, else a key derived from "
        "SECRET_KEY) and keep the newest --keep checkpoints. audit_verify compares the trail with the newest "
        "one, which finds streams deleted together with their heads. Celery beat runs it hourly."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--keep", type=int, default=CHECKPOINT_KEEP, help=f"checkpoints to keep (default {CHECKPOINT_KEEP})"
        )

    def handle(self, *args, keep=CHECKPOINT_KEEP, **options):
        if keep < 1:
            raise CommandError("--keep must be at least 1 (the newest checkpoint is always kept)")
        cp = audit_checkpoint(keep=keep)
        # One JSON line: shipped with the logs, it is a copy of the checkpoint outside the database.
        line = {"checkpoint": cp.pk, "created_at": isoformat_z(cp.created_at), "streams": cp.streams}
        self.stdout.write(json.dumps({**line, "records": cp.records, "mac": cp.mac}))
