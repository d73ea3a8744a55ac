from django.contrib import admin, messages

from events.admin import ReadOnlyAdmin  # rows the admin shows and never writes
from notifications import sender
from notifications.models import Notification, NotificationDelivery, NotifierCursor, QueueSummary


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    """Email, Slack and Teams deliveries: what failed and why (no secrets kept), and sending again."""

    list_display = ("id", "created_at", "channel", "kind", "recipient", "status", "attempts", "next_attempt_at")
    list_filter = ("status", "channel", "kind")
    search_fields = ("=event_id", "recipient", "=work_item_id")
    actions = ["retry"]

    @admin.action(description="Send the selected deliveries again", permissions=["retry"])
    def retry(self, request, queryset):
        n = sender.retry(queryset.values_list("id", flat=True))
        self.message_user(request, f"{n} delivery(ies) due again", messages.SUCCESS)

    def has_retry_permission(self, request):
        return request.user.is_active and request.user.is_superuser


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "kind", "recipient", "title", "read_at")
    list_filter = ("kind",)
    search_fields = ("=event_id", "recipient__username", "=work_item_id")


@admin.register(NotifierCursor)
class NotifierCursorAdmin(ReadOnlyAdmin):
    list_display = ("id", "last_id", "scanned_to", "updated_at")


@admin.register(QueueSummary)
class QueueSummaryAdmin(ReadOnlyAdmin):
    """The daily summaries sent: one row per queue and day, with its figures."""

    list_display = ("day", "queue", "open", "overdue", "breached", "completed", "met", "created_at")
    list_filter = ("day",)
    search_fields = ("queue",)
