"""Sending deliveries: outside any change's transaction, retried with exponential backoff, then dead.

Due rows (pending, or failed and past `next_attempt_at`) are claimed with SKIP LOCKED and
leased (`next_attempt_at` moved out) in a short transaction, sent with no transaction open,
and their outcome recorded; a sender that dies mid-send leaves a row that comes back when
its lease ends. A row is sent at most once per claim, so a receiver sees it once unless the
sender dies between the receiver's answer and the record.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config import wsconfig
from notifications import channels
from notifications import models as m

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
DUE = (m.NotificationDelivery.PENDING, m.NotificationDelivery.FAILED)


def backoff(attempts: int) -> timedelta:
    cfg = wsconfig.get().notifications
    return timedelta(seconds=min(cfg.retryMaxSeconds, cfg.retryBaseSeconds * 2 ** max(0, attempts - 1)))


def claim_due(limit: int = 100) -> list[int]:
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            m.NotificationDelivery.objects.select_for_update(skip_locked=True)
            .filter(status__in=DUE, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        m.NotificationDelivery.objects.filter(id__in=ids).update(next_attempt_at=now + LEASE)
    return ids


def _record(delivery: m.NotificationDelivery, error: channels.SendFailed | None) -> None:
    now = timezone.now()
    attempts = delivery.attempts + 1
    fields = {"attempts": attempts}
    if error is None:
        fields.update(status=m.NotificationDelivery.SENT, sent_at=now, last_error="")
    else:
        dead = error.permanent or attempts >= wsconfig.get().notifications.maxAttempts
        fields.update(
            status=m.NotificationDelivery.DEAD if dead else m.NotificationDelivery.FAILED,
            next_attempt_at=now + backoff(attempts),
            last_error=str(error),
        )
        log.warning("notification %s (%s) attempt %s failed: %s", delivery.pk, delivery.channel, attempts, error)
    m.NotificationDelivery.objects.filter(pk=delivery.pk).update(**fields)


def send_due(*, limit: int = 100) -> int:
    """Send what is due now, each outside any transaction; returns how many were sent."""
    if transaction.get_connection().in_atomic_block:
        raise RuntimeError("notifications are sent outside any transaction")
    sent = 0
    for pk in claim_due(limit):
        delivery = m.NotificationDelivery.objects.select_related("user").get(pk=pk)
        try:
            channels.send(delivery)
        except channels.SendFailed as exc:
            _record(delivery, exc)
        else:
            _record(delivery, None)
            sent += 1
    return sent


def retry(ids) -> int:
    """Make failed or dead deliveries due now, with their attempts counted afresh (the admin's action)."""
    return m.NotificationDelivery.objects.filter(Q(pk__in=list(ids)) & ~Q(status=m.NotificationDelivery.SENT)).update(
        status=m.NotificationDelivery.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
