"""Periodic audit jobs (Celery beat, config/settings.py)."""

from celery import shared_task

from audit.services import access_log_purge, audit_checkpoint
from config import context, partitions, wsconfig


@shared_task(name="audit.checkpoint")
def checkpoint() -> int:
    """Sign every stream's head (audit.services.audit_checkpoint); returns the checkpoint's id."""
    with context.acting(channel="system"):
        return audit_checkpoint().pk


@shared_task(name="audit.purge_access_log")
def purge_access_log() -> int:
    """Delete access records past `accessLog.retentionDays` (30 by default); returns how many."""
    return access_log_purge()


@shared_task(name="audit.maintain_partitions")
def maintain_partitions() -> int:
    """Create the next months' partitions of the audit trail and the outbox, drop the outbox's
    old ones (config/partitions.py); returns how many partitions were created or dropped."""
    report = partitions.maintain(retention_days=wsconfig.get().relay.retainPublishedDays)
    return sum(1 for row in report if row[2] in ("created", "dropped"))
