"""`manage.py sync_directory [--dry-run]`: bring users, groups and departments in line with LDAP/AD."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from config.context import acting
from directory.ldap_sync import SyncError, directory_sync


class ProgressBar:
    """A one-line bar on a terminal (a command's OutputWrapper); silent otherwise (cron, CI, logs)."""

    def __init__(self, stream, width: int = 40):
        self.stream = stream
        self.width = width
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // total if total else self.width
        if filled == self.last and done != total:
            return
        self.last = filled
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{total}", ending="\n" if done == total else "")
        self.stream.flush()


class Command(BaseCommand):
    help = "Create, update and deactivate users, groups and departments from the LDAP/AD directory."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report what would change; write nothing")
        parser.add_argument(
            "--allow-empty",
            action="store_true",
            help="go on when the directory returns no users (would deactivate every directory account)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")

    def handle(self, *args, **options):
        tty = self.stdout.isatty()
        progress = ProgressBar(self.stdout) if tty and not options["no_progress"] else None
        try:
            with acting(channel="system"):
                report = directory_sync(
                    dry_run=options["dry_run"], allow_empty=options["allow_empty"], progress=progress
                )
        except SyncError as exc:
            raise CommandError(str(exc)) from None
        prefix = "dry run: " if report.dry_run else ""
        self.stdout.write(prefix + report.summary())
        for line in report.failed[:50]:
            self.stderr.write(f"failed: {line}")
        if report.failed:
            raise CommandError(f"{len(report.failed)} users failed to sync")
