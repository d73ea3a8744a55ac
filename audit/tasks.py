"""Periodic audit jobs (Celery beat, config/settings.py)."""

from celery import shared_task

from audit.services import audit_checkpoint
from config import context


@shared_task(name="audit.checkpoint")
def checkpoint() -> int:
    """Sign every stream's head (audit.services.audit_checkpoint); returns the checkpoint's id."""
    with context.acting(channel="system"):
        return audit_checkpoint().pk
