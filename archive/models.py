"""Archive tables: terminal work items past the retention, and their audit records, moved out
of the live tables (archive.services.archive_items) and back (restore_item).

The audit rows keep their ids, hashes and links byte for byte, so `audit_verify` walks an
archived stream exactly as a live one; on PostgreSQL a row may leave `audit_auditrecord` only
when an identical row is already in `archive_archivedauditrecord` (and back), see
migrations/0001_initial.py.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ArchivedWorkItem(models.Model):
    """One archived work item: its `workitems_workitem` row as JSON (`row`, PostgreSQL's
    to_jsonb of the row, restored with jsonb_populate_record) and its candidate and excluded
    lists as ids, with the columns reads and the visibility rule need kept indexed."""

    id = models.BigIntegerField(primary_key=True)  # the work item's own id
    queue_id = models.BigIntegerField()
    state = models.CharField(max_length=20)
    assignee_id = models.BigIntegerField(null=True, blank=True)
    closed_at = models.DateTimeField()
    archived_at = models.DateTimeField(default=timezone.now)
    row = models.JSONField()
    candidate_user_ids = models.JSONField(default=list, blank=True)
    candidate_group_ids = models.JSONField(default=list, blank=True)
    excluded_user_ids = models.JSONField(default=list, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["queue_id", "closed_at"], name="arch_wi_queue_closed_idx"),
            models.Index(fields=["closed_at"], name="arch_wi_closed_idx"),
        ]

    def __str__(self) -> str:
        return f"archived work item {self.pk} ({self.state})"


class ArchivedAuditRecord(models.Model):
    """An audit record of an archived item: the same columns as `audit_auditrecord` (same
    names, types and values), without the foreign keys (the item is no longer live)."""

    id = models.BigIntegerField(primary_key=True)
    stream = models.CharField(max_length=100)
    seq = models.PositiveIntegerField()
    work_item_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=50)
    actor_id = models.IntegerField(null=True, blank=True)
    actor_username = models.CharField(max_length=150, blank=True)
    channel = models.CharField(max_length=10)
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    data = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    correlation_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["stream", "seq"], name="arch_audit_stream_seq_uniq")]
        indexes = [models.Index(fields=["work_item_id", "seq"], name="arch_audit_item_seq_idx")]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.stream}#{self.seq} {self.action} (archived)"
