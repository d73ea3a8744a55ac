"""Notifications: what the notifier made of the outbox's events.

`Notification` is the in-app channel itself (one per event and recipient). Every other
channel gets a `NotificationDelivery` (one per event, recipient and channel: the unique
key is the deduplication), sent outside any change's transaction and retried with backoff.
`NotifierCursor` is how far the notifier has read the outbox (one row, locked while read).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# The triggers: what happened, as the kind of a notification and the key of a preference.
ASSIGNED, RESERVED, DELEGATED, CLAIMED = "assigned", "reserved", "delegated", "claimed"
SLA_AT_RISK, SLA_BREACHED, ESCALATED = "sla_at_risk", "sla_breached", "escalated"
CAPACITY_ALERT, DAILY_SUMMARY = "capacity_alert", "daily_summary"
TRIGGERS = (ASSIGNED, RESERVED, DELEGATED, CLAIMED, SLA_AT_RISK, SLA_BREACHED, ESCALATED, CAPACITY_ALERT, DAILY_SUMMARY)

IN_APP, EMAIL, SLACK, TEAMS, PAGERDUTY = "in_app", "email", "slack", "teams", "pagerduty"
CHANNELS = (IN_APP, EMAIL, SLACK, TEAMS, PAGERDUTY)


class Notification(models.Model):
    """One in-app notification: the row is the delivery (GET /me/notifications)."""

    id = models.BigAutoField(primary_key=True)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    event_id = models.UUIDField()
    kind = models.CharField(max_length=20, choices=[(t, t) for t in TRIGGERS])
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    work_item_id = models.BigIntegerField(null=True, blank=True)
    queue = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["event_id", "recipient"], name="notification_event_user_uniq")]
        indexes = [
            models.Index(fields=["recipient", "-id"], name="notification_user_idx"),
            models.Index(
                fields=["recipient", "-id"], name="notification_unread_idx", condition=Q(read_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.recipient_id}: {self.title}"


class NotificationDelivery(models.Model):
    """One event to one recipient on one channel (email, slack, teams, pagerduty) and its attempts.

    `recipient` is a username (email) or the webhook target's label (`slack:global`,
    `teams:queue:<name>`, `pagerduty:ref:<ref>`): the URL or routing key itself is a secret,
    read from the environment when sent, never stored here. `pending` (never tried) and
    `failed` (retrying at `next_attempt_at`) are due; `sent` and `dead` (attempts used up, or
    refused for good) are final.
    """

    PENDING, SENT, FAILED, DEAD = "pending", "sent", "failed", "dead"
    STATUSES = (PENDING, SENT, FAILED, DEAD)

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField()
    recipient = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    channel = models.CharField(max_length=10, choices=[(c, c) for c in CHANNELS if c != IN_APP])
    kind = models.CharField(max_length=20, choices=[(t, t) for t in TRIGGERS])
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    work_item_id = models.BigIntegerField(null=True, blank=True)
    queue = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=[(s, s) for s in STATUSES], default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "notification deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "recipient", "channel"], name="notification_delivery_uniq")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="notification_due_idx", condition=Q(status__in=["pending", "failed"])
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.kind} → {self.recipient} ({self.status})"


class NotificationPreference(models.Model):
    """A user's choices: `email` maps a trigger to on/off (a missing trigger is on)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    email = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"preferences of {self.user_id}"


class QueueSummary(models.Model):
    """One queue's daily summary: its figures for `day` (the day before it was sent, in the
    summary's time zone). Unique per (queue, day): the row is what keeps a second run from
    summarising again; its notifications are unique per recipient (and channel) as well."""

    id = models.BigAutoField(primary_key=True)
    queue = models.CharField(max_length=100)
    day = models.DateField(help_text="the day summarised")
    open = models.PositiveIntegerField(default=0)
    overdue = models.PositiveIntegerField(default=0)
    breached = models.PositiveIntegerField(default=0, help_text="items that breached their deadline that day")
    completed = models.PositiveIntegerField(default=0, help_text="items with a deadline completed that day")
    met = models.PositiveIntegerField(default=0, help_text="of those, completed by their deadline")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "queue"]
        verbose_name_plural = "queue summaries"
        constraints = [models.UniqueConstraint(fields=["queue", "day"], name="queue_summary_day_uniq")]

    def __str__(self) -> str:
        return f"{self.queue} on {self.day}"

    @property
    def sla_compliance(self) -> float | None:
        return round(self.met / self.completed, 4) if self.completed else None


class NotifierCursor(models.Model):
    """How far the notifier has read the outbox (one row, pk 1, locked FOR UPDATE while read).

    Every outbox id up to `last_id` is done. Ids commit out of order, so an id missing below
    the highest one read (`scanned_to`) may still come: it is kept in `gaps` as
    `[low, high, seen_at]` and looked for again on each run, until no transaction that was
    open when the gap was seen is still open (then it was rolled back). Rows after a gap are
    handled at once (the unique keys make handling twice harmless); only `last_id` waits.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_id = models.BigIntegerField(default=0)
    scanned_to = models.BigIntegerField(default=0)
    gaps = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"notifier at outbox id {self.last_id}"
