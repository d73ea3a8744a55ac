from django.urls import path

from api.auth_views import TokenObtainView, TokenRefreshView
from api.meta_views import FeaturesView
from audit.access_api import AccessListView
from audit.api import AuditListView, AuditVerifyView
from directory import api as d
from events import api as ev
from notifications import api as n
from stats import api as st
from workitems.api import case_views as c
from workitems.api import queue_views as q
from workitems.api import task_type_views as tt
from workitems.api import views as w

urlpatterns = [
    path("auth/token", TokenObtainView.as_view(), name="auth-token"),
    path("auth/token/refresh", TokenRefreshView.as_view(), name="auth-token-refresh"),
    path("workitems", w.WorkItemListCreateView.as_view(), name="workitem-list"),
    path("workitems/bulk", w.WorkItemBulkCreateView.as_view(), name="workitem-bulk"),
    *(
        path(f"workitems/bulk/{action}", w.bulk_action_view(action).as_view(), name=f"workitem-bulk-{action}")
        for action in w.BULK_BODIES
    ),
    path("workitems/claim-next", w.ClaimNextView.as_view(), name="workitem-claim-next"),
    path("workitems/<int:item_id>", w.WorkItemDetailView.as_view(), name="workitem-detail"),
    path("workitems/<int:item_id>/history", w.WorkItemHistoryView.as_view(), name="workitem-history"),
    path("workitems/<int:item_id>/<str:action>", w.WorkItemActionView.as_view(), name="workitem-action"),
    path("queues", q.QueueListCreateView.as_view(), name="queue-list"),
    path("queues/<slug:name>", q.QueueDetailView.as_view(), name="queue-detail"),
    path("queues/<slug:name>/stats", st.QueueStatsView.as_view(), name="queue-stats"),
    path("queues/<slug:name>/rebalance", q.QueueRebalanceView.as_view(), name="queue-rebalance"),
    path("stats/queues", st.StatsQueuesView.as_view(), name="stats-queues"),
    path("stats/users", st.StatsUsersView.as_view(), name="stats-users"),
    path("stats/timeseries", st.StatsTimeseriesView.as_view(), name="stats-timeseries"),
    path("cases", c.CaseListCreateView.as_view(), name="case-list"),
    path("cases/<str:case_number>", c.CaseDetailView.as_view(), name="case-detail"),
    *(
        path(f"cases/<str:case_number>/{action}", c.case_action_view(action).as_view(), name=f"case-{action}")
        for action in ("close", "reopen")
    ),
    path("calendars", q.CalendarListCreateView.as_view(), name="calendar-list"),
    path("calendars/<slug:name>", q.CalendarDetailView.as_view(), name="calendar-detail"),
    path("task-types", tt.TaskTypeListCreateView.as_view(), name="task-type-list"),
    path("task-types/<str:workflow_id>/<str:task_name>", tt.TaskTypeDetailView.as_view(), name="task-type-detail"),
    path("workflows", tt.WorkflowRegisterView.as_view(), name="workflow-register"),
    path("audit", AuditListView.as_view(), name="audit-list"),
    path("audit/verify", AuditVerifyView.as_view(), name="audit-verify"),
    path("audit/access", AccessListView.as_view(), name="audit-access"),
    path("features", FeaturesView.as_view(), name="features"),
    path("subscriptions", ev.SubscriptionListCreateView.as_view(), name="subscription-list"),
    path("subscriptions/<int:subscription_id>", ev.SubscriptionDetailView.as_view(), name="subscription-detail"),
    path(
        "subscriptions/<int:subscription_id>/deliveries",
        ev.SubscriptionDeliveriesView.as_view(),
        name="subscription-deliveries",
    ),
    path("notifications", ev.NotificationListView.as_view(), name="notification-list"),
    path("me/notifications", n.MyNotificationsView.as_view(), name="me-notifications"),
    path("me/notifications/read-all", n.MyNotificationsReadAllView.as_view(), name="me-notifications-read-all"),
    path(
        "me/notifications/<int:notification_id>/read", n.MyNotificationReadView.as_view(), name="me-notification-read"
    ),
    path("me/preferences", n.MyPreferencesView.as_view(), name="me-preferences"),
    path("users", d.UserListView.as_view(), name="user-list"),
    path("users/<str:username>", d.UserDetailView.as_view(), name="user-detail"),
    path("users/<str:username>/availability", d.UserAvailabilityView.as_view(), name="user-availability"),
    path("users/<str:username>/role-grants", d.UserRoleGrantsView.as_view(), name="user-role-grants"),
    path("role-grants/<int:grant_id>/revoke", d.RoleGrantRevokeView.as_view(), name="role-grant-revoke"),
    path("groups", d.GroupListView.as_view(), name="group-list"),
    path("departments", d.DepartmentListView.as_view(), name="department-list"),
    path("roles", d.RoleListView.as_view(), name="role-list"),
]
