from django.contrib import admin, messages

from config.admin_lists import BigTableAdmin, field_choices_filter
from events import services
from events.models import Delivery, InboxCommand, OutboxEvent, ProcessedEvent, Subscription
from events.relay import replay_dead_events
from workitems.models import ACTIONS, CREATE, EVENT_NAMES

# The event types written, for the list filters (a filter that read them from the table
# would be a SELECT DISTINCT over the whole outbox): the action table's, the capacity
# alert, and the inbound consumer's replies.
EVENT_TYPES = sorted(
    {f"workitem.{event}.v1" for event in EVENT_NAMES.values()}
    | {"queue.capacity_alert.v1", "command.applied.v1", "command.rejected.v1"}
)
EventTypeFilter = field_choices_filter("event_type", EVENT_TYPES, title="event type")
COMMAND_NAMES = [CREATE, *(name for name, action in ACTIONS.items() if not action.system)]


class ReadOnlyAdmin(BigTableAdmin):
    """Rows written only by the code paths that own them; the admin looks, it does not edit
    (a view page: no Save buttons, a POST is refused). Their tables grow without bound, so
    the lists do not count them whole (BigTableAdmin)."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class DeadLetteredFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivery"

    def lookups(self, request, model_admin):
        return [("pending", "pending"), ("published", "published"), ("dead", "dead-lettered")]

    def queryset(self, request, queryset):
        if self.value() == "pending":
            return queryset.filter(published_at__isnull=True, dead_lettered_at__isnull=True)
        if self.value() == "published":
            return queryset.filter(published_at__isnull=False)
        if self.value() == "dead":
            return queryset.filter(dead_lettered_at__isnull=False, published_at__isnull=True)
        return queryset


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    """The outbox: what was written, what is published, what is dead-lettered (and replaying it)."""

    list_display = (
        "id",
        "occurred_at",
        "event_type",
        "aggregate_id",
        "sequence",
        "published_at",
        "attempts",
        "dead_lettered_at",
    )
    list_filter = (DeadLetteredFilter, EventTypeFilter)
    search_fields = ("=event_id", "=aggregate_id", "correlation_id", "trace_id")
    actions = ["replay"]

    @admin.action(description="Replay selected dead-lettered events", permissions=["replay"])
    def replay(self, request, queryset):
        n = replay_dead_events(ids=list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{n} dead-lettered event(s) put back in line", messages.SUCCESS)

    def has_replay_permission(self, request):
        return request.user.is_active and request.user.is_superuser


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Webhook subscriptions, read-only: created and deleted over the API (which checks the
    URL against the SSRF guard and audits); here, re-enable one disabled after failures."""

    list_display = ("id", "url", "active", "consecutive_failures", "circuit_open_until", "disabled_at", "deleted_at")
    list_filter = ("active",)
    search_fields = ("url",)
    readonly_fields = (
        "secret",
        "owner",
        "created_at",
        "deleted_at",
        "disabled_at",
        "disabled_reason",
        "consecutive_failures",
        "circuit_open_until",
        "active",
    )
    actions = ["enable"]

    def has_add_permission(self, request):
        return False  # through the API: it checks the URL and returns the secret once

    def has_change_permission(self, request, obj=None):
        return False  # no command changes a subscription: a saved form would skip the URL guard and the audit

    def has_delete_permission(self, request, obj=None):
        return False  # the delivery log stays; the API's DELETE deactivates

    @admin.action(description="Re-enable selected subscriptions (reset failures)")
    def enable(self, request, queryset):
        for sub in queryset:
            services.subscription_enable(actor=request.user, subscription_id=sub.pk)
        self.message_user(request, f"{queryset.count()} subscription(s) enabled", messages.SUCCESS)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    """The webhook/callback delivery log."""

    list_display = ("id", "kind", "event_type", "url", "status", "attempts", "last_status_code", "next_attempt_at")
    list_filter = ("status", "kind", EventTypeFilter)
    search_fields = ("url",)
    list_select_related = ("subscription",)


@admin.register(InboxCommand)
class InboxCommandAdmin(ReadOnlyAdmin):
    """Inbound commands seen (one row per command_id) and their outcomes."""

    list_display = ("id", "received_at", "command", "command_id", "actor_username", "outcome", "work_item_id")
    list_filter = (field_choices_filter("command", COMMAND_NAMES), "outcome")
    search_fields = ("=command_id", "correlation_id")


@admin.register(ProcessedEvent)
class ProcessedEventAdmin(ReadOnlyAdmin):
    """What the notification consumer recorded (once per event_id)."""

    list_display = ("id", "processed_at", "event_type", "aggregate_id", "sequence", "correlation_id")
    list_filter = (EventTypeFilter,)
    search_fields = ("=event_id", "=aggregate_id", "correlation_id")
