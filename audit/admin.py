from django.contrib import admin
from django.db.models import Q

from audit.models import AccessRecord, AuditCheckpoint, AuditHead, AuditRecord
from config.admin_lists import field_choices_filter, fixed_choices_filter
from events.admin import ReadOnlyAdmin  # rows the admin shows and never writes
from workitems.models import ACTIONS, CREATE, State

# Fixed choices, not read from the tables (a SELECT DISTINCT over the whole trail): the work-item
# actions and states; other streams' actions (queue.update, user.create, …) are found by search.
WorkItemActionFilter = field_choices_filter("action", [CREATE, *ACTIONS], title="work-item action")
ToStateFilter = field_choices_filter("to_state", State.values, title="to state")
StatusClassFilter = fixed_choices_filter(
    "status",
    "status_class",
    [(f"{c}xx", f"{c}xx", Q(status__gte=c * 100, status__lt=c * 100 + 100)) for c in (2, 3, 4, 5)],
)
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
AUTH_KINDS = [("jwt", "jwt", Q(auth="jwt")), ("api-key", "api-key", Q(auth="api-key"))]
AUTH_KINDS += [("session", "session", Q(auth="session")), ("none", "anonymous", Q(auth=""))]


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
    list_filter = (WorkItemActionFilter, "channel", ToStateFilter)
    search_fields = ("stream", "actor_username", "request_id", "correlation_id")
    list_select_related = False
    ordering = ("-id",)  # newest first


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
    list_filter = (
        StatusClassFilter,
        field_choices_filter("method", METHODS),
        fixed_choices_filter("auth", "auth", AUTH_KINDS),
    )
    search_fields = ("actor_username", "request_id", "route")
