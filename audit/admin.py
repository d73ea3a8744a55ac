from django.contrib import admin

from audit.models import AuditRecord


@admin.register(AuditRecord)
class AuditRecordAdmin(admin.ModelAdmin):
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
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
