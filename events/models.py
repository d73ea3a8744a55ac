"""The transactional outbox."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from config.timefmt import isoformat_z


class OutboxEvent(models.Model):
    """One event to deliver, written in the same transaction as the change it describes.

    The envelope (docs/events.md, "On the bus"): `event_id`, `event_type` (`workitem.<action>.v1`),
    `occurred_at`, `producer`, `trace_id`, `correlation_id`, `payload`. `sequence`
    is the per-aggregate order (for a work item, its `version` after the change),
    so consumers can detect gaps and reordering. Rows stay unpublished
    (`published_at` null) until the relay has a broker confirm for them. On PostgreSQL the
    table is partitioned by month of `occurred_at` (config/partitions.py).
    """

    id = models.BigAutoField(primary_key=True)
    # Unique by construction (a uuid4 made here), not by an index: the table is partitioned by
    # month of occurred_at on PostgreSQL, and a unique index would need occurred_at in it.
    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=100)
    aggregate_type = models.CharField(max_length=50, default="workitem")
    aggregate_id = models.CharField(max_length=64)
    sequence = models.PositiveIntegerField()
    occurred_at = models.DateTimeField(default=timezone.now)
    producer = models.CharField(max_length=100)
    trace_id = models.CharField(max_length=128, blank=True)
    # The W3C trace context of the change that wrote the row ("" outside a trace): the relay's
    # publish span is its child, and its traceparent goes out in the AMQP and webhook headers.
    traceparent = models.CharField(max_length=55, blank=True, default="", db_default="")
    correlation_id = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    dead_lettered_at = models.DateTimeField(null=True, blank=True)
    # After a failed publish: not before this time (exponential backoff). Null = due now.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Not unique (the partitioning, above): an aggregate's sequence is its version after
            # the change, bumped under its row lock in the change's transaction.
            models.Index(fields=["aggregate_type", "aggregate_id", "sequence"], name="outbox_aggregate_seq_idx"),
            models.Index(fields=["event_id"], name="outbox_event_id_idx"),
            # The relay's work list: only unpublished, live rows, in id order.
            models.Index(
                fields=["id"],
                name="outbox_unpublished_idx",
                condition=Q(published_at__isnull=True, dead_lettered_at__isnull=True),
            ),
            # "Is an earlier event of this aggregate still pending?": the relay's per-item
            # order check probes this small index instead of the aggregate's whole history.
            models.Index(
                fields=["aggregate_type", "aggregate_id", "sequence"],
                name="outbox_pending_agg_idx",
                condition=Q(published_at__isnull=True, dead_lettered_at__isnull=True),
            ),
            models.Index(fields=["id"], name="outbox_dead_idx", condition=Q(dead_lettered_at__isnull=False)),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id}#{self.sequence}"

    def envelope(self) -> dict:
        """The message as published."""
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "occurred_at": isoformat_z(self.occurred_at),
            "producer": self.producer,
            "trace_id": self.trace_id,
            "correlation_id": self.correlation_id,
            "sequence": self.sequence,
            "payload": self.payload,
        }


class Subscription(models.Model):
    """A webhook endpoint: which event types to POST to `url`, signed with `secret` (Standard Webhooks).

    `consecutive_failures` drives the circuit breaker (`circuit_open_until`) and the
    automatic disable (`active` false, `disabled_at`, audited on `subscription:<id>`).
    Deleting through the API keeps the row (`deleted_at`) so its delivery log survives.
    """

    url = models.URLField(max_length=1000)
    event_types = models.JSONField(default=list)
    secret = models.CharField(max_length=100, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    circuit_open_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"subscription {self.pk} → {self.url}"


class Delivery(models.Model):
    """One event to one endpoint (a subscription, or a work item's `callback_url`) and its attempts.

    Created by the relay in the transaction that marks the event published; sent by
    the webhook sender, which claims due rows with a lease (`next_attempt_at`) so a
    crashed sender's rows come back. `attempt_log` keeps every attempt.
    """

    WEBHOOK, CALLBACK = "webhook", "callback"
    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=10, choices=[(WEBHOOK, WEBHOOK), (CALLBACK, CALLBACK)], default=WEBHOOK)
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    # No database constraint: a foreign key to the partitioned outbox would need occurred_at
    # too. The relay creates a delivery in the transaction that publishes its event, and the
    # event's removal (purge_published, a partition's drop) removes its finished deliveries.
    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    event_type = models.CharField(max_length=100)
    url = models.CharField(max_length=1000)
    status = models.CharField(max_length=10, choices=[(s, s) for s in (PENDING, DELIVERED, FAILED)], default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    attempt_log = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "deliveries"
        indexes = [
            # The sender's work list: pending rows by due time.
            models.Index(fields=["next_attempt_at"], name="delivery_due_idx", condition=Q(status="pending")),
            models.Index(fields=["subscription", "id"], name="delivery_sub_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.event_type} → {self.url} ({self.status})"


class InboxCommand(models.Model):
    """An inbound command, recorded once per `command_id` in the transaction that applies it.

    The unique `command_id` is what makes redelivered commands idempotent: a second
    delivery finds the row (or waits on the first one's insert) and changes nothing.
    """

    APPLIED, REJECTED = "applied", "rejected"

    id = models.BigAutoField(primary_key=True)
    command_id = models.CharField(max_length=64, unique=True)
    command = models.CharField(max_length=20)
    correlation_id = models.CharField(max_length=200, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    outcome = models.CharField(max_length=10, choices=[(APPLIED, APPLIED), (REJECTED, REJECTED)])
    work_item_id = models.BigIntegerField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.command} {self.command_id} ({self.outcome})"


class ProcessedEvent(models.Model):
    """An event the notification consumer handled, recorded once per `event_id` (for debugging the flow)."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    event_type = models.CharField(max_length=100)
    aggregate_id = models.CharField(max_length=64, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    correlation_id = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    envelope = models.JSONField()
    processed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
