"""The console's routes (mounted at /console/ in config/urls.py)."""

from django.contrib.auth import views as auth_views
from django.urls import path

from console import dashboard, views
from console.access import ConsoleLoginForm

app_name = "console"

urlpatterns = [
    path(
        "login",
        auth_views.LoginView.as_view(
            template_name="console/login.html", authentication_form=ConsoleLoginForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout", auth_views.LogoutView.as_view(), name="logout"),
    path("", dashboard.home, name="home"),
    path("inbox", views.inbox, name="inbox"),
    path("inbox/live", views.inbox_live, name="inbox-live"),
    path("inbox/claim-next", views.claim_next, name="claim-next"),
    path("me/availability", views.availability, name="availability"),
    path("live/<slug:part>", dashboard.live, name="live"),
    path("queues/<slug:name>", dashboard.queue_page, name="queue"),
    path("queues/<slug:name>/live", dashboard.queue_live, name="queue-live"),
    path("items/<int:item_id>", views.item_page, name="item"),
    path("items/<int:item_id>/<str:action>", views.item_action, name="item-action"),
]
