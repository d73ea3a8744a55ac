from django.contrib import admin

from audit.models import AccessRecord, AuditCheckpoint, AuditHead, AuditRecord
from events.admin import ReadOnlyAdmin  # rows the admin shows and never writes


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    """Read-only: the trail is append-only."""

    list_display = (
        "id",
        "created_at",
        "stream",
        "seq",
        "action",
        "actor_username",
        "channel",
        "from_state",
        "to_state",
    )
    list_filter = ("action", "channel", "to_state")
    search_fields = ("stream", "actor_username", "request_id", "correlation_id")
    date_hierarchy = "created_at"
    list_select_related = False


@admin.register(AuditHead)
class AuditHeadAdmin(ReadOnlyAdmin):
    """Each stream's last seq and hash (audit_verify checks the chain ends there)."""

    list_display = ("stream", "seq", "updated_at")
    search_fields = ("stream",)


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    """The signed snapshots of all heads (manage.py audit_checkpoint, hourly in beat)."""

    list_display = ("id", "created_at", "streams", "records", "mac")
    exclude = ("heads",)  # one entry per stream: too long for a page

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "heads"]


@admin.register(AccessRecord)
class AccessRecordAdmin(ReadOnlyAdmin):
    """The access log (api/access_log.py): every API request and its outcome; kept
    accessLog.retentionDays, then deleted by the hourly purge."""

    list_display = ("id", "at", "method", "route", "status", "problem", "actor_username", "auth", "duration_ms")
    list_filter = ("status", "method", "auth", "problem")
    search_fields = ("actor_username", "request_id", "route")
    date_hierarchy = "at"
