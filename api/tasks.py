"""Periodic API housekeeping."""

from celery import shared_task

from api import idempotency


@shared_task(name="api.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    """Delete stored Idempotency-Key responses past their retention (24 h by default)."""
    return idempotency.purge_expired()
