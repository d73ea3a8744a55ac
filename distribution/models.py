"""Distribution state that must be shared by every server process."""

from __future__ import annotations

from django.db import models


class RoundRobinCursor(models.Model):
    """The last user a queue's round robin served; locked while the next one is chosen."""

    queue = models.OneToOneField("workitems.Queue", on_delete=models.CASCADE, primary_key=True, related_name="+")
    last_user_id = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"round robin of queue {self.queue_id} after user {self.last_user_id}"

    @classmethod
    def lock_for(cls, queue_id: int) -> RoundRobinCursor:
        """The queue's cursor, row-locked until the transaction ends (created on first use)."""
        cls.objects.bulk_create([cls(queue_id=queue_id)], ignore_conflicts=True)
        return cls.objects.select_for_update().get(queue_id=queue_id)
