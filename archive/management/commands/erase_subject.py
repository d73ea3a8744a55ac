"""`manage.py erase_subject --context-key customer_id --value …` (GDPR erasure)."""

import json

from django.core.management.base import BaseCommand, CommandError

from archive.services import erase_subject
from config import context
from workitems.errors import ValidationFailed


class Command(BaseCommand):
    help = (
        "Erase a data subject: every work item (live or archived) whose context_data[--context-key] is "
        "--value has the value replaced by [erased] wherever it occurs in its row (context data, title, "
        "result, reasons ...), its audit records' payloads, its outbox rows, the notifications about it and the "
        "inbound commands that named it. Each item's audit stream gets "
        "a workitem.erased record naming the redacted records; audit_verify accepts exactly those "
        "(README, Operations: the value itself is not written anywhere)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--context-key", required=True)
        parser.add_argument("--value", required=True)
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON")

    def handle(self, *args, context_key, value, as_json=False, **options):
        try:
            with context.acting(channel="system"):
                report = erase_subject(context_key=context_key, value=value)
        except ValidationFailed as exc:
            raise CommandError(str(exc)) from None
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"erased from {len(report.live_items)} live and {len(report.archived_items)} archived items: "
                f"{report.audit_records} audit records redacted, {report.outbox_events} outbox rows, "
                f"{report.other_rows} notification and inbound-command rows"
            )
        )
