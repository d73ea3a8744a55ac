"""The daily archival job (Celery beat "archive-items", config/settings.py)."""

from datetime import timedelta

from celery import shared_task

from archive.services import archive_items
from config import context, wsconfig


@shared_task(name="archive.archive_items")
def archive_due() -> int | None:
    """Archive terminal items past `archive.retentionDays`, `archive.batchSize` per transaction;
    returns how many moved, None when `archive.enabled` is off (the default)."""
    conf = wsconfig.get().archive
    if not conf.enabled:
        return None
    with context.acting(channel="system"):
        return archive_items(older_than=timedelta(days=conf.retentionDays), batch=conf.batchSize).items
