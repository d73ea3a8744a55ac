"""Celery jobs of distribution: they take ids and call the service layer."""

from __future__ import annotations

from celery import shared_task
from django.contrib.auth import get_user_model

from config.context import acting
from distribution import redistribute


@shared_task(name="distribution.expire_reservations")
def expire_reservations() -> int:
    with acting(channel="system"):
        return redistribute.expire_reservations()


@shared_task(name="distribution.user_unavailable")
def user_unavailable(user_id: int, reason: str = "out of office") -> int:
    user = get_user_model().objects.get(pk=user_id)
    with acting(channel="system"):
        return redistribute.on_user_unavailable(user=user, reason=reason)


@shared_task(name="distribution.user_returned")
def user_returned(user_id: int) -> int:
    user = get_user_model().objects.get(pk=user_id)
    with acting(channel="system"):
        return redistribute.on_user_returned(user=user)
