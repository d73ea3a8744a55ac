"""`manage.py audit_verify`: what an OK proves and what it cannot is in `help` below, and in
audit.services.audit_verify's docstring (README, security, says the same)."""

import json

from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_verify


class Command(BaseCommand):
    help = (
        "Walk the audit hash chains and report the first problem (exit status 1 if any). "
        "OK proves, for every stream: each record matches its hash and links to the one before "
        "(nothing edited, reordered or removed in the middle); the stream ends at its head, written "
        "with each record (records cut from the end, or a whole stream whose head stayed, are found); "
        "and every stream of the newest signed checkpoint (audit_checkpoint, HMAC with "
        "AUDIT_CHECKPOINT_KEY or a key derived from SECRET_KEY) still reaches the record it had then "
        "(a stream deleted together with its head, or rewritten and re-hashed from the start, is found; "
        "the signature is checked in a full run, not with --stream). On PostgreSQL triggers refuse "
        "UPDATE, DELETE and TRUNCATE of records, deleting or rewinding heads, and changing checkpoints. "
        "It cannot see: a stream created after the newest checkpoint and deleted with its head; "
        "before the first checkpoint, any stream deleted with its head; and a table owner or superuser who "
        "disables the triggers (ALTER TABLE ... DISABLE TRIGGER, session_replication_role = replica) "
        "and also holds the checkpoint key can rewrite records, heads and checkpoints alike. "
        "Without the key such a rewrite fails the newest checkpoint's signature."
    )

    def add_arguments(self, parser):
        parser.add_argument("--stream", help="check one stream only, e.g. workitem:42")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON")

    def handle(self, *args, stream=None, as_json=False, **options):
        report = audit_verify(stream=stream)
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        elif report.ok:
            checkpoint = (
                f"the newest checkpoint ({report.checkpoint_id}, {report.checkpoint_at}) matches"
                if report.checkpoint_id
                else "no checkpoint yet (streams deleted with their heads cannot be found: run audit_checkpoint)"
            )
            self.stdout.write(
                self.style.SUCCESS(
                    f"audit chain OK: {report.records_checked} records in {report.streams_checked} streams, "
                    f"each ending at its head; {checkpoint}"
                    + (f"; {report.archived_records} of the records in the archive" if report.archived_records else "")
                    + (
                        f"; {report.redactions} records redacted by erase_subject, each named by a later "
                        "workitem.erased record"
                        if report.redactions
                        else ""
                    )
                )
            )
        if not report.ok:
            raise CommandError(
                f"audit chain BROKEN at record id={report.broken_id} "
                f"stream={report.broken_stream} seq={report.broken_seq}: {report.reason} "
                f"({report.records_checked} records verified before it)"
            )
