"""The immutable audit trail."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditImmutable(Exception):
    """Audit records are append-only: they are never updated or deleted."""


class AuditQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AuditImmutable("audit records cannot be updated")

    def delete(self):
        raise AuditImmutable("audit records cannot be deleted")


class AuditRecord(models.Model):
    """One change to one entity, append-only and hash-chained per stream.

    A *stream* is one entity's history (`workitem:42`, `user:7`). Each record
    stores `seq` (1, 2, … without gaps within its stream), the SHA-256 of its
    own content, and the hash of the previous record of its stream, so
    editing, removing or reordering a record breaks the chain at that point
    (`manage.py audit_verify`). Chains are per stream rather than global so that
    writers of different items never wait on one shared chain head: the item's
    row lock, which every command holds anyway, already orders its stream.
    The end of each stream is its `AuditHead`; `AuditCheckpoint` signs all heads.
    On PostgreSQL triggers reject UPDATE, DELETE and TRUNCATE on this table, which is
    partitioned by month of `created_at` (config/partitions.py).
    """

    CHANNELS = [(c, c) for c in ("api", "admin", "event", "system", "console")]

    id = models.BigAutoField(primary_key=True)
    stream = models.CharField(max_length=100)
    seq = models.PositiveIntegerField()
    work_item = models.ForeignKey(
        "workitems.WorkItem", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_records"
    )
    action = models.CharField(max_length=50)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,  # the trail outlives the users it names
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    channel = models.CharField(max_length=10, choices=CHANNELS)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    data = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    correlation_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)

    objects = AuditQuerySet.as_manager()

    class Meta:
        # Not unique in the database: a partitioned table (by month of created_at, PostgreSQL)
        # can have no global unique index without the partition key. The stream's head refuses a
        # duplicate seq (its trigger lets it advance by exactly one, config/partitions.py).
        indexes = [
            models.Index(fields=["stream", "seq"], name="audit_stream_seq_idx"),
            models.Index(fields=["work_item", "seq"], name="audit_item_seq_idx"),
            models.Index(fields=["actor", "created_at"], name="audit_actor_time_idx"),
            models.Index(fields=["created_at"], name="audit_time_idx"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq} {self.action}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditImmutable("audit records cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditImmutable("audit records cannot be deleted")

    def content(self) -> dict:
        """Everything the hash covers."""
        return {
            "stream": self.stream,
            "seq": self.seq,
            "work_item": self.work_item_id,
            "action": self.action,
            "actor": self.actor_id,
            "actor_username": self.actor_username,
            "channel": self.channel,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "data": self.data,
            "request_id": self.request_id,
            "correlation_id": self.correlation_id,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "prev_hash": self.prev_hash,
        }

    def compute_hash(self) -> str:
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


class AuditHead(models.Model):
    """The end of one stream: its last record's `seq` and `hash`.

    Written in the same transaction as each record (`audit_record` reads it to chain the
    next record and upserts it after), so a stream whose last records were deleted no longer
    reaches its head, and a head without records names a stream that was removed
    (`audit_verify`). On PostgreSQL a trigger refuses DELETE and TRUNCATE and lets an UPDATE
    only advance the head by one record.
    """

    stream = models.CharField(max_length=100, primary_key=True)
    seq = models.PositiveIntegerField()
    hash = models.CharField(max_length=64)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq}"


class AuditCheckpoint(models.Model):
    """A signed snapshot of every stream's head (`manage.py audit_checkpoint`, Celery beat).

    `heads` maps each stream to its seq at `created_at`; `mac` is an HMAC-SHA256, under a key
    from the environment (audit.checkpoint), over the time and every (stream, seq, hash). A
    stream deleted together with its head is still listed in the newest checkpoint, and a
    stream rewritten consistently (records re-hashed, head moved) no longer matches the MAC.
    On PostgreSQL a trigger refuses UPDATE and TRUNCATE, and DELETE of the newest checkpoint.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField()
    streams = models.PositiveIntegerField()
    records = models.PositiveBigIntegerField()
    heads = models.JSONField()
    mac = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="audit_checkpoint_time_idx")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"checkpoint {self.pk} at {self.created_at:%Y-%m-%d %H:%M:%S} ({self.streams} streams)"


class AccessRecord(models.Model):
    """One API request and its outcome (api/access_log.py): who asked for which operation on
    which resource, and what they got, refusals included.

    Kept apart from the change audit above: not hash-chained, written for reads as well as
    writes, and deleted after `accessLog.retentionDays`. It holds no request bodies, no query
    values (only the parameters' names) and no addresses unless `accessLog.recordIp` is on.
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField()
    request_id = models.CharField(max_length=128)
    method = models.CharField(max_length=10)
    route = models.CharField(max_length=200, blank=True)  # "/api/v1/workitems/{item_id}"; "" when none matched
    resource = models.JSONField(default=dict, blank=True)  # the route's parameters: {"item_id": 42}
    params = models.JSONField(default=list, blank=True)  # the query parameters' names, never their values
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_username = models.CharField(max_length=150, blank=True)
    auth = models.CharField(max_length=10, blank=True)  # jwt | api-key | session | "" (anonymous)
    credential = models.CharField(max_length=100, blank=True)  # "jwt:<jti>", "api-key:<prefix>"
    status = models.PositiveSmallIntegerField()
    problem = models.CharField(max_length=50, blank=True)  # the problem type's kind: "not-found"
    duration_ms = models.PositiveIntegerField()
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["at"], name="access_time_idx"),
            models.Index(fields=["actor_username", "id"], name="access_user_idx"),
            models.Index(fields=["status", "id"], name="access_status_idx"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.method} {self.route or '?'} {self.status}"

    @property
    def operation(self) -> str:
        return f"{self.method} {self.route}" if self.route else self.method
