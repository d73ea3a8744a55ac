"""No Save buttons on read-only admin pages, in every app: each admin whose rows the admin may
not change (audit records and heads, checkpoints, the access log, outbox events, deliveries,
inbound commands, notifications, subscriptions, work items) shows a page without Save, Save
and continue or Save and add another, refuses a POST, and its history page has none either."""

from __future__ import annotations

import uuid

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse

from audit.models import AccessRecord, AuditCheckpoint, AuditHead, AuditRecord
from events.models import Delivery, InboxCommand, OutboxEvent, ProcessedEvent, Subscription
from notifications.models import Notification, NotificationDelivery, NotifierCursor
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db
SAVE_BUTTONS = ('name="_save"', 'name="_continue"', 'name="_addanother"')
READ_ONLY = {
    AuditRecord,
    AuditHead,
    AuditCheckpoint,
    AccessRecord,
    OutboxEvent,
    Delivery,
    InboxCommand,
    ProcessedEvent,
    Subscription,
    Notification,
    NotificationDelivery,
    NotifierCursor,
    WorkItem,
}


@pytest.fixture
def rows(make_item, admin_client, admin_user):
    """At least one row in each read-only table."""
    item = make_item()
    call_command("audit_checkpoint", verbosity=0)
    admin_client.get("/api/v1/workitems")  # an access record
    sub = Subscription.objects.create(url="https://hooks.example.com/ws", event_types=[], secret="s" * 32)
    event = OutboxEvent.objects.filter(aggregate_id=str(item.pk)).first()
    Delivery.objects.create(subscription=sub, event=event, event_type=event.event_type, url=sub.url)
    InboxCommand.objects.create(command_id="c-1", command="claim", outcome="applied")
    ProcessedEvent.objects.create(event_id=uuid.uuid4(), event_type=event.event_type, envelope={})
    Notification.objects.create(recipient=admin_user, event_id=uuid.uuid4(), kind="assigned", title="t")
    NotificationDelivery.objects.create(
        event_id=uuid.uuid4(), recipient="a@example.com", channel="email", kind="assigned", title="t"
    )
    NotifierCursor.objects.get_or_create(pk=1)
    return item


def read_only_admins(user) -> dict:
    request = RequestFactory().get("/admin/")
    request.user = user
    return {
        model: model_admin
        for model, model_admin in admin.site._registry.items()
        if model_admin.has_view_permission(request) and not model_admin.has_change_permission(request)
    }


def test_every_read_only_admin_page_has_no_save_button_and_refuses_a_post(admin_client, admin_user, rows):
    found = read_only_admins(admin_user)
    assert set(found) >= READ_ONLY, READ_ONLY - set(found)
    for model in found:
        opts = model._meta
        listing = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert listing.status_code == 200 and 'name="_save"' not in listing.content.decode(), model.__name__
        obj = model._default_manager.first()
        if obj is None:  # a read-only admin added since: its list is checked, its page when it has rows
            assert model not in READ_ONLY, f"no {model.__name__} row to look at"
            continue
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
        page = admin_client.get(url)
        assert page.status_code == 200, (url, page.status_code)
        html = page.content.decode()
        assert not [b for b in SAVE_BUTTONS if b in html], (model.__name__, url)
        assert admin_client.post(url, {}).status_code == 403, url
        history = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[obj.pk]))
        assert history.status_code == 200 and not [b for b in SAVE_BUTTONS if b in history.content.decode()]


def test_a_subscription_is_not_edited_in_the_admin(admin_client, rows):
    """A saved form would skip the URL guard and the audit: subscriptions change over the API."""
    sub = Subscription.objects.get()
    url = reverse("admin:events_subscription_change", args=[sub.pk])
    assert admin_client.post(url, {"url": "http://169.254.169.254/", "event_types": "[]"}).status_code == 403
    sub.refresh_from_db()
    assert sub.url == "https://hooks.example.com/ws"
