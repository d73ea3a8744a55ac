from django.conf import settings
from django.db import models


class Item(models.Model):
    """About the columns a caller of a work-item service would send and read."""

    workflow_id = models.CharField(max_length=200)
    run_id = models.CharField(max_length=200, blank=True, default="")
    task_name = models.CharField(max_length=200)
    queue = models.CharField(max_length=100)
    state = models.CharField(max_length=20, default="OFFERED")
    priority = models.IntegerField(default=0)
    payload = models.JSONField(default=dict, blank=True)
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.IntegerField(default=1)

    class Meta:
        app_label = "naive"
        indexes = [models.Index(fields=["-created_at", "-id"], name="naive_item_created_idx")]

    def __str__(self) -> str:
        return f"{self.workflow_id}/{self.task_name}"
