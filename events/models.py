"""The transactional outbox."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboxEvent(models.Model):
    """One event to deliver, written in the same transaction as the change it describes.

    The envelope is DESIGN.md's: `event_id`, `event_type` (`workitem.<action>.v1`),
    `occurred_at`, `producer`, `trace_id`, `correlation_id`, `payload`. `sequence`
    is the per-aggregate order (for a work item, its `version` after the change),
    so consumers can detect gaps and reordering. Rows stay unpublished
    (`published_at` null) until the relay has a broker confirm for them.
    """

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event_type = models.CharField(max_length=100)
    aggregate_type = models.CharField(max_length=50, default="workitem")
    aggregate_id = models.CharField(max_length=64)
    sequence = models.PositiveIntegerField()
    occurred_at = models.DateTimeField(default=timezone.now)
    producer = models.CharField(max_length=100)
    trace_id = models.CharField(max_length=128, blank=True)
    correlation_id = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    dead_lettered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["aggregate_type", "aggregate_id", "sequence"], name="outbox_aggregate_seq_uniq"
            )
        ]
        indexes = [
            # The relay's work list: only unpublished, live rows, in id order.
            models.Index(
                fields=["id"],
                name="outbox_unpublished_idx",
                condition=Q(published_at__isnull=True, dead_lettered_at__isnull=True),
            ),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id}#{self.sequence}"

    def envelope(self) -> dict:
        """The message as published."""
        return {
            "event_id": str(self.event_id),
            "event_type": self.event_type,
            "occurred_at": self.occurred_at.isoformat(),
            "producer": self.producer,
            "trace_id": self.trace_id,
            "correlation_id": self.correlation_id,
            "sequence": self.sequence,
            "payload": self.payload,
        }
