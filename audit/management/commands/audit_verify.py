import json

from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_verify


class Command(BaseCommand):
    help = "Walk the audit hash chains and report the first broken link (exit status 1 if any)."

    def add_arguments(self, parser):
        parser.add_argument("--stream", help="check one stream only, e.g. workitem:42")
        parser.add_argument("--json", action="store_true", dest="as_json", help="print the report as JSON")

    def handle(self, *args, stream=None, as_json=False, **options):
        report = audit_verify(stream=stream)
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), indent=2))
        elif report.ok:
            self.stdout.write(
                self.style.SUCCESS(
                    f"audit chain OK: {report.records_checked} records in {report.streams_checked} streams"
                )
            )
        if not report.ok:
            raise CommandError(
                f"audit chain BROKEN at record id={report.broken_id} "
                f"stream={report.broken_stream} seq={report.broken_seq}: {report.reason} "
                f"({report.records_checked} records verified before it)"
            )
