"""Celery jobs of the directory: each calls one service."""

from __future__ import annotations

from celery import shared_task

from config.context import acting
from config.retry import retry_transient
from directory import services
from directory.ldap_sync import directory_sync


@shared_task(name="directory.sync_directory")
def sync_directory() -> dict:
    """The scheduled directory sync (same service as `manage.py sync_directory`)."""
    with acting(channel="system"):
        return retry_transient(directory_sync, where="task").as_dict()


@shared_task(name="directory.availability_sweep")
def availability_sweep() -> int:
    """Hand over the held items of users whose scheduled absence has just begun."""
    with acting(channel="system"):
        return retry_transient(services.availability_sweep, where="task")


@shared_task(name="directory.role_grants_apply")
def role_grants_apply() -> int:
    """Start the temporary platform roles that are due and end those that are over."""
    with acting(channel="system"):
        return retry_transient(services.platform_role_grants_apply, where="task")
