"""`manage.py restore_item <id>`: an archived work item back into the live tables."""

from django.core.management.base import BaseCommand, CommandError

from archive.services import restore_item
from config import context
from workitems.errors import NotFound


class Command(BaseCommand):
    help = "Bring one archived work item back into the live tables, with its audit records (archive_items)."

    def add_arguments(self, parser):
        parser.add_argument("item_id", type=int)

    def handle(self, *args, item_id, **options):
        try:
            with context.acting(channel="system"):
                item = restore_item(item_id)
        except NotFound as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"restored work item {item.pk} ({item.state})"))
