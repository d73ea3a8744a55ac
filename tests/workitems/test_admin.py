"""The work-item admin: items are read-only, their actions and the queue and lifecycle
forms go through the commands (validated, audited with channel "admin")."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditRecord
from events.models import OutboxEvent
from tests import factories
from workitems import services
from workitems.models import Lifecycle, Queue, WorkItem

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/workitems/workitem/"
SAVE_BUTTONS = ('name="_save"', 'name="_continue"', 'name="_addanother"')


@pytest.fixture
def root(admin_user):
    """pytest-django's staff superuser (an admin by the platform's roles too)."""
    return admin_user


@pytest.fixture
def web(admin_client):
    return admin_client


def trail(item) -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(work_item=item).order_by("seq"))


def shown_messages(resp) -> list[str]:
    return [str(m) for m in resp.context["messages"]]


def run_action(web, action: str, items, **form) -> tuple:
    """The two steps of a bulk action: the changelist's action form (it answers with the
    action's own form), then that form submitted; returns both answers (the second followed)."""
    selected = [it.pk for it in items]
    page = web.post(CHANGELIST, {"action": action, "index": "0", "_selected_action": selected})
    assert page.status_code == 200, page.status_code
    done = web.post(CHANGELIST, {"action": action, "_selected_action": selected, "apply": "1", **form}, follow=True)
    assert done.status_code == 200 and done.redirect_chain, done.status_code
    return page, done


@pytest.fixture
def completed(svc, queue, alice, sam):
    return factories.item_in("COMPLETED", queue=queue, creator=svc, worker=alice, supervisor=sam)


# --- bulk actions ---------------------------------------------------------------------


def test_cancel_action_asks_a_reason_and_reports_the_item_it_cannot_cancel(web, root, make_item, completed):
    a, b = make_item(), make_item()
    page, done = run_action(web, "cancel_items", [a, completed, b], reason="duplicate request")
    assert 'name="reason"' in page.content.decode() and f"#{completed.pk}" in page.content.decode()

    a.refresh_from_db(), b.refresh_from_db(), completed.refresh_from_db()
    assert (a.state, b.state, completed.state) == ("CANCELLED", "CANCELLED", "COMPLETED")
    for it in (a, b):
        last = trail(it)[-1]
        assert (last.action, last.channel, last.actor_id, last.to_state) == ("cancel", "admin", root.pk, "CANCELLED")
        assert last.data["reason"] == "duplicate request"
    assert trail(completed)[-1].action == "complete"
    msgs = shown_messages(done)
    assert "Cancelled: 2 item(s)." in msgs
    assert any(m.startswith(f"#{completed.pk}: ") for m in msgs), msgs


def test_cancel_action_without_a_reason_shows_the_form_again(web, make_item):
    a = make_item()
    resp = web.post(CHANGELIST, {"action": "cancel_items", "_selected_action": [a.pk], "apply": "1", "reason": ""})
    assert resp.status_code == 200 and "This field is required" in resp.content.decode()
    a.refresh_from_db()
    assert a.state == "OFFERED"


def test_escalate_action(web, root, make_item):
    a, b = make_item(), make_item()
    run_action(web, "escalate_items", [a, b], reason="customer waiting")
    for it in (a, b):
        it.refresh_from_db()
        assert it.escalation_level == 1
        last = trail(it)[-1]
        assert (last.action, last.channel, last.actor_id) == ("escalate", "admin", root.pk)
        assert last.data["reason"] == "customer waiting"


def test_escalate_with_the_feature_off_says_so_once(web, make_item, ws_config):
    a, b = make_item(), make_item()
    ws_config({"features": {"escalation": False}})
    _, done = run_action(web, "escalate_items", [a, b], reason="customer waiting")
    msgs = shown_messages(done)
    assert len(msgs) == 1 and "features.escalation is off" in msgs[0], msgs
    for it in (a, b):
        it.refresh_from_db()
        assert it.escalation_level == 0 and trail(it)[-1].action != "escalate"


def test_reassign_action_assigns_delegates_and_reports_failures(web, root, make_item, alice, carol, completed):
    offered, held = make_item(), services.work_item_claim(item_id=make_item().pk, actor=alice)
    page, done = run_action(web, "reassign_items", [offered, held, completed], user=carol.pk)
    assert 'name="user"' in page.content.decode()

    for it in (offered, held, completed):
        it.refresh_from_db()
    assert (offered.state, offered.assignee_id) == ("ASSIGNED", carol.pk)
    assert (held.state, held.assignee_id) == ("ASSIGNED", carol.pk)
    assert completed.state == "COMPLETED" and completed.assignee_id == alice.pk
    assert [(r.action, r.channel, r.actor_id) for r in (trail(offered)[-1], trail(held)[-1])] == [
        ("assign", "admin", root.pk),
        ("delegate", "admin", root.pk),
    ]
    msgs = shown_messages(done)
    assert "Reassigned to carol: 2 item(s)." in msgs
    assert any(m.startswith(f"#{completed.pk}: ") for m in msgs), msgs


def test_select_across_acts_on_every_matching_item(web, make_item):
    items = [make_item() for _ in range(3)]
    data = {"action": "cancel_items", "select_across": "1", "_selected_action": [items[0].pk]}
    page = web.post(CHANGELIST, {**data, "index": "0"})
    assert "3 work items" in page.content.decode()
    web.post(CHANGELIST, {**data, "apply": "1", "reason": "all of them"})
    assert set(WorkItem.objects.values_list("state", flat=True)) == {"CANCELLED"}


# --- the item page ---------------------------------------------------------------------


@pytest.fixture
def worked(svc, queue, alice, sam):
    """An item with five audit records: created, claimed, started, suspended, resumed."""
    it = factories.item_in("SUSPENDED", queue=queue, creator=svc, worker=alice, supervisor=sam)
    it = services.work_item_resume(item_id=it.pk, actor=sam)
    assert len(trail(it)) == 5
    return it


def test_item_page_shows_the_audit_trail_and_allowed_actions_and_no_save(web, root, worked):
    page = web.get(f"{CHANGELIST}{worked.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    for button in SAVE_BUTTONS:
        assert button not in html
    section = html[html.index('id="audit-trail"') :]
    rows = re.findall(r'<tr class="audit-record">(.*?)</tr>', section, re.S)
    assert len(rows) == 5
    assert [a for a in ("create", "claim", "start", "suspend", "resume") if a in section] == [
        "create",
        "claim",
        "start",
        "suspend",
        "resume",
    ]
    assert "IN_PROGRESS → SUSPENDED" in section and "sam" in section and "on hold" in section
    allowed = services.allowed_actions_for(worked, root)
    assert allowed and "cancel" in allowed
    listed = re.findall(r'class="ws-action" data-action="(\w+)"', html)  # one button form each
    assert sorted(listed) == sorted(allowed) and "claim" not in listed


def test_item_page_cannot_be_saved(web, worked):
    resp = web.post(f"{CHANGELIST}{worked.pk}/change/", {"title": "changed"})
    assert resp.status_code == 403
    worked.refresh_from_db()
    assert worked.title != "changed" and len(trail(worked)) == 5


@pytest.mark.parametrize(
    "model, url",
    [
        (AuditRecord, "/admin/audit/auditrecord/{}/change/"),
        (OutboxEvent, "/admin/events/outboxevent/{}/change/"),
    ],
)
def test_audit_and_outbox_pages_are_read_only_too(web, make_item, model, url):
    row = model.objects.filter(**{"work_item" if model is AuditRecord else "aggregate_id": make_item().pk}).get()
    page = web.get(url.format(row.pk))
    assert page.status_code == 200 and not any(b in page.content.decode() for b in SAVE_BUTTONS)
    assert web.post(url.format(row.pk), {}).status_code == 403


def test_item_history_is_its_audit_trail(web, worked):
    page = web.get(f"{CHANGELIST}{worked.pk}/history/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "have a change history" not in html
    assert len(re.findall(r'<tr class="audit-record">', html)) == 5


# --- queues and lifecycles ---------------------------------------------------------------

QUEUE_FORM = {
    "name": "billing",
    "description": "Billing disputes",
    "strategy": "offer",
    "weight": 1,
    "capacity_per_user": "",
    "sla": "",
    "escalation_queue": "",
    "lifecycle": "",
    "sensitive_keys": "[]",
    "encrypted_keys": "[]",
    "reservation_timeout": "",
    "calendar": "",
    "at_risk_ratio": "0.75",
    "escalation_policy": "",
    "active": "on",
}


def saved(resp):
    if resp.status_code == 200 and resp.context is not None and resp.context.get("adminform") is not None:
        raise AssertionError(f"form not saved: {resp.context['adminform'].form.errors}")
    assert resp.status_code == 302, resp.status_code


def test_queue_add_and_change_go_through_the_commands(web, root, team_a, queue):
    saved(web.post("/admin/workitems/queue/add/", {**QUEUE_FORM, "candidate_groups": [team_a.pk], "sla": "4:00:00"}))
    billing = Queue.objects.get(name="billing")
    (created,) = AuditRecord.objects.filter(stream=f"queue:{billing.pk}")
    assert (created.action, created.channel, created.actor_id) == ("queue.create", "admin", root.pk)
    assert created.data["candidate_groups"] == ["team-a"] and created.data["sla"] == "P0DT04H00M00S"

    change = {**QUEUE_FORM, "candidate_groups": [team_a.pk], "sla": "8:00:00", "escalation_queue": queue.pk}
    del change["name"]  # a queue's name cannot change: it is read-only on the change form
    saved(web.post(f"/admin/workitems/queue/{billing.pk}/change/", change))
    updated = AuditRecord.objects.get(stream=f"queue:{billing.pk}", seq=2)
    assert (updated.action, updated.channel, updated.actor_id) == ("queue.update", "admin", root.pk)
    assert updated.data["changes"] == {
        "sla": ["P0DT04H00M00S", "P0DT08H00M00S"],
        "escalation_queue": [None, queue.name],
    }


def test_queue_form_shows_the_commands_errors_and_writes_nothing(web, ws_config, queue):
    ws_config({"features": {"distribution": {"strategies": {"round_robin": False}}}})
    before = AuditRecord.objects.count()
    resp = web.post("/admin/workitems/queue/add/", {**QUEUE_FORM, "strategy": "round_robin"})
    assert resp.status_code == 200
    assert resp.context["adminform"].form.errors["strategy"] == [
        "strategy round_robin is switched off in the configuration"
    ]
    change = {**QUEUE_FORM, "strategy": "round_robin", "capacity_per_user": "0"}
    del change["name"]
    resp = web.post(f"/admin/workitems/queue/{queue.pk}/change/", change)
    assert set(resp.context["adminform"].form.errors) == {"strategy", "capacity_per_user"}
    queue.refresh_from_db()
    assert not Queue.objects.filter(name="billing").exists() and queue.strategy == "offer"
    assert AuditRecord.objects.count() == before


LIFECYCLE_FORM = {
    "name": "four-eyes",
    "description": "",
    "start_step": "optional",
    "allow_suspend": "on",
    "allow_delegate": "on",
    "result_schema": "null",
    "sub_statuses": "{}",
    "action_roles": '{"cancel": ["admin"]}',
}


def test_lifecycle_add_and_change_go_through_the_commands(web, root):
    saved(web.post("/admin/workitems/lifecycle/add/", LIFECYCLE_FORM))
    lc = Lifecycle.objects.get(name="four-eyes")
    (created,) = AuditRecord.objects.filter(stream=f"lifecycle:{lc.pk}")
    assert (created.action, created.channel, created.actor_id) == ("lifecycle.create", "admin", root.pk)
    assert created.data["action_roles"] == {"cancel": ["admin"]} and created.data["allow_release"] is False

    change = {k: v for k, v in LIFECYCLE_FORM.items() if k != "name"}
    change["result_schema"] = '{"type": "object", "required": ["approved"]}'
    saved(web.post(f"/admin/workitems/lifecycle/{lc.pk}/change/", change))
    updated = AuditRecord.objects.get(stream=f"lifecycle:{lc.pk}", seq=2)
    assert (updated.action, updated.channel, updated.actor_id) == ("lifecycle.update", "admin", root.pk)
    assert updated.data["changes"] == {"result_schema": [None, {"type": "object", "required": ["approved"]}]}


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("result_schema", '{"type": "no-such-type"}', "not a valid JSON Schema"),
        ("action_roles", '{"cancel": ["archangel"]}', "must be a list drawn from"),
        ("action_roles", '{"teleport": ["admin"]}', "unknown action 'teleport'"),
        ("sub_statuses", '{"moves": {"draft": ["review\\u0000"]}}', "must not contain NUL"),
    ],
)
def test_lifecycle_form_shows_the_commands_errors_and_writes_nothing(web, field, value, message):
    existing = factories.lifecycle("existing")
    before = AuditRecord.objects.count()
    resp = web.post("/admin/workitems/lifecycle/add/", {**LIFECYCLE_FORM, field: value})
    assert resp.status_code == 200 and message in " ".join(resp.context["adminform"].form.errors[field])
    change = {k: v for k, v in LIFECYCLE_FORM.items() if k != "name"}
    resp = web.post(f"/admin/workitems/lifecycle/{existing.pk}/change/", {**change, field: value})
    assert resp.status_code == 200 and message in " ".join(resp.context["adminform"].form.errors[field])
    existing.refresh_from_db()
    assert existing.start_step == "required" and existing.action_roles == {}
    assert not Lifecycle.objects.filter(name="four-eyes").exists() and AuditRecord.objects.count() == before


def test_queues_and_lifecycles_are_not_deleted_in_the_admin(web, queue):
    lc = factories.lifecycle("kept")
    for url in (f"/admin/workitems/queue/{queue.pk}/delete/", f"/admin/workitems/lifecycle/{lc.pk}/delete/"):
        assert web.post(url, {"post": "yes"}).status_code == 403
    for url in ("/admin/workitems/queue/", "/admin/workitems/lifecycle/"):
        assert "delete_selected" not in web.get(url).content.decode()
    assert Queue.objects.filter(pk=queue.pk).exists() and Lifecycle.objects.filter(pk=lc.pk).exists()


def test_a_staff_user_without_the_admin_role_is_refused_by_the_command(client, sam, queue):
    """Django's model permissions open the form; the command still asks for the admin role."""
    from django.contrib.auth.models import Permission

    sam.is_staff = True
    sam.save()
    sam.user_permissions.add(*Permission.objects.filter(codename__in=["add_queue", "change_queue", "view_queue"]))
    client.force_login(sam)
    resp = client.post("/admin/workitems/queue/add/", QUEUE_FORM)
    assert resp.status_code == 200
    assert resp.context["adminform"].form.non_field_errors() == ["only admins create and change queues"]
    assert not Queue.objects.filter(name="billing").exists()
