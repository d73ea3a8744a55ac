"""Periodic audit jobs (Celery beat, config/settings.py)."""

from celery import shared_task

from audit.services import access_log_purge, audit_checkpoint
from config import context


@shared_task(name="audit.checkpoint")
def checkpoint() -> int:
    """Sign every stream's head (audit.services.audit_checkpoint); returns the checkpoint's id."""
    with context.acting(channel="system"):
        return audit_checkpoint().pk


@shared_task(name="audit.purge_access_log")
def purge_access_log() -> int:
    """Delete access records past `accessLog.retentionDays` (30 by default); returns how many."""
    return access_log_purge()
