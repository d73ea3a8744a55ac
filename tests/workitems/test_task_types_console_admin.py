"""Task types in the console (the complete form from the task type's result schema, laid out by
its `form`) and in the admin (created and changed through the task-type commands, audited)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.models import AuditRecord
from tests.workitems.test_admin import saved
from workitems import services
from workitems.models import TaskType

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "object",
    "required": ["decision"],
    "properties": {
        "note": {"type": "string", "title": "Note", "description": "the schema's help"},
        "amount": {"type": "integer"},
        "decision": {"enum": ["approve", "reject"]},
    },
}
FORM = {
    "fields": [{"name": "decision", "label": "Your decision", "help": "approve or reject the claim"}, {"name": "note"}]
}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def started(svc, alice, queue):
    """An IN_PROGRESS item of claims/review (a task type with SCHEMA and FORM), held by alice."""
    services.task_type_create(
        actor=svc,
        data={
            "workflow_id": "claims",
            "task_name": "review",
            "queue": queue.name,
            "result_schema": SCHEMA,
            "form": FORM,
        },
    )
    item = services.work_item_create(
        actor=svc, data={"workflow_id": "claims", "task_name": "review", "assignee": "alice"}
    )
    return services.work_item_start(item_id=item.pk, actor=alice)


def test_the_complete_form_follows_the_task_type_schema_and_form(alice, started):
    client = logged_in(alice)
    html = client.get(f"/console/items/{started.pk}").content.decode()
    names = re.findall(r'name="result__([a-z]+)"', html)
    assert names == ["decision", "note", "amount"]  # the form's order, then the rest in the schema's
    assert '<label for="rf-decision">Your decision <abbr title="required">*</abbr></label>' in html
    assert "approve or reject the claim" in html
    assert '<label for="rf-note">Note</label>' in html and "the schema&#x27;s help" in html  # no label: the schema's
    refused = client.post(f"/console/items/{started.pk}/complete", {"version": started.version, "result__note": "x"})
    assert refused.status_code == 400 and 'data-testid="result-error-decision"' in refused.content.decode()
    done = client.post(
        f"/console/items/{started.pk}/complete",
        {"version": started.version, "result__decision": "approve", "result__amount": "12"},
    )
    assert done.status_code == 302
    started.refresh_from_db()
    assert started.state == "COMPLETED" and started.result == {"decision": "approve", "amount": 12}


TASK_TYPE_FORM = {
    "workflow_id": "claims",
    "task_name": "review",
    "workflow_name": "Claims",
    "description": "",
    "queue": "",
    "priority": "70",
    "sla": "2:00:00",
    "required_skills": '["german"]',
    "sensitive_keys": "[]",
    "result_schema": "",
    "form": "",
    "active": "on",
}


def test_the_admin_creates_and_changes_task_types_through_the_commands(admin_client, admin_user, queue, team_a):
    saved(admin_client.post("/admin/workitems/tasktype/add/", {**TASK_TYPE_FORM, "candidate_groups": [team_a.pk]}))
    tt = TaskType.objects.get()
    assert (tt.priority, tt.required_skills, [g.name for g in tt.candidate_groups.all()]) == (
        70,
        ["german"],
        ["team-a"],
    )
    (created,) = AuditRecord.objects.filter(stream=f"task_type:{tt.pk}")
    assert (created.action, created.channel, created.actor_id) == ("task_type.create", "admin", admin_user.pk)

    change = {**TASK_TYPE_FORM, "queue": queue.pk, "priority": "", "candidate_groups": [team_a.pk]}
    del change["workflow_id"], change["task_name"]  # the key is read-only on the change form
    saved(admin_client.post(f"/admin/workitems/tasktype/{tt.pk}/change/", change))
    updated = AuditRecord.objects.get(stream=f"task_type:{tt.pk}", seq=2)
    assert (updated.action, updated.channel) == ("task_type.update", "admin")
    assert updated.data["changes"] == {"priority": [70, None], "queue": [None, queue.name]}
    assert admin_client.post(f"/admin/workitems/tasktype/{tt.pk}/delete/").status_code == 403


def test_the_admin_form_shows_the_commands_errors_and_writes_nothing(admin_client):
    bad = {**TASK_TYPE_FORM, "result_schema": '{"type": "nonsense"}', "form": '{"fields": [{"name": 1}]}'}
    resp = admin_client.post("/admin/workitems/tasktype/add/", bad)
    assert resp.status_code == 200
    errors = resp.context["adminform"].form.errors
    assert "not a valid JSON Schema" in errors["result_schema"][0]
    assert not TaskType.objects.exists() and not AuditRecord.objects.filter(action__startswith="task_type").exists()
    resp = admin_client.post("/admin/workitems/tasktype/add/", {**TASK_TYPE_FORM, "form": '{"fields": [{"name": 1}]}'})
    assert "the result property it shows" in resp.context["adminform"].form.errors["form"][0]
    assert not TaskType.objects.exists()


def test_only_roles_that_create_items_may_define_them_in_the_admin(client, alice):
    from django.contrib.auth.models import Permission

    alice.is_staff = True
    alice.save()
    alice.user_permissions.add(*Permission.objects.filter(codename__in=["add_tasktype", "view_tasktype"]))
    client.force_login(alice, backend="django.contrib.auth.backends.ModelBackend")
    resp = client.post("/admin/workitems/tasktype/add/", TASK_TYPE_FORM)
    assert resp.status_code == 200 and "define task types" in str(resp.context["adminform"].form.errors)
    assert not TaskType.objects.exists()
