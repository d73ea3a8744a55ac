"""The case admin: the add form is `case_create`, the close and reopen actions are the
commands, audited with channel "admin"; a case's fields do not change afterwards."""

from __future__ import annotations

import pytest

from audit.models import AuditRecord
from tests import factories
from workitems import services
from workitems.models import Case

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/workitems/case/"
CASE_FORM = {
    "case_number": "ADM-1",
    "title": "Storm damage",
    "data": '{"policy": "P-1"}',
    "sensitive_keys": "[]",
    "due_at_0": "2031-05-01",
    "due_at_1": "12:00:00",
}


def test_add_form_opens_the_case_through_its_command(admin_client, admin_user):
    resp = admin_client.post(f"{CHANGELIST}add/", CASE_FORM)
    assert resp.status_code == 302, resp.context["adminform"].form.errors if resp.context else resp
    case = Case.objects.get(case_number="ADM-1")
    assert (case.title, case.data, case.state, case.created_by_id) == (
        "Storm damage",
        {"policy": "P-1"},
        "open",
        admin_user.pk,
    )
    assert case.due_at.isoformat().startswith("2031-05-01")
    (created,) = AuditRecord.objects.filter(stream=f"case:{case.pk}")
    assert (created.action, created.channel, created.actor_id) == ("case.create", "admin", admin_user.pk)


def test_add_form_shows_the_commands_errors_and_writes_nothing(admin_client, svc):
    services.case_create(actor=svc, data={"case_number": "ADM-1"})
    before = AuditRecord.objects.count()
    resp = admin_client.post(f"{CHANGELIST}add/", {**CASE_FORM, "case_number": "bad number"})
    assert resp.status_code == 200 and "case_number" in resp.context["adminform"].form.errors
    resp = admin_client.post(f"{CHANGELIST}add/", CASE_FORM)  # taken
    assert resp.status_code == 200 and "already exists" in str(resp.context["adminform"].form.errors)
    assert AuditRecord.objects.count() == before and Case.objects.count() == 1


def test_change_page_is_read_only(admin_client, svc):
    case = services.case_create(actor=svc, data={"case_number": "RO-1", "title": "kept"})
    page = admin_client.get(f"{CHANGELIST}{case.pk}/change/")
    assert page.status_code == 200 and 'name="title"' not in page.content.decode()
    admin_client.post(f"{CHANGELIST}{case.pk}/change/", {"title": "changed"})
    case.refresh_from_db()
    assert case.title == "kept" and case.version == 1


def test_close_and_reopen_actions_run_the_commands(admin_client, admin_user, svc, queue):
    open_one = services.case_create(actor=svc, data={"case_number": "A-1"})
    busy = services.case_create(actor=svc, data={"case_number": "A-2"})
    factories.item(actor=svc, queue=queue, case="A-2")
    done = admin_client.post(
        CHANGELIST, {"action": "close_cases", "_selected_action": [open_one.pk, busy.pk]}, follow=True
    )
    msgs = [str(m) for m in done.context["messages"]]
    assert "Closed: 1 case(s)." in msgs
    assert any(m.startswith(f"#{busy.pk}: ") and "open item" in m for m in msgs), msgs
    open_one.refresh_from_db(), busy.refresh_from_db()
    assert (open_one.state, busy.state) == ("closed", "open")
    last = AuditRecord.objects.filter(stream=f"case:{open_one.pk}").latest("seq")
    assert (last.action, last.channel, last.actor_id) == ("case.close", "admin", admin_user.pk)

    admin_client.post(CHANGELIST, {"action": "reopen_cases", "_selected_action": [open_one.pk]}, follow=True)
    open_one.refresh_from_db()
    assert open_one.state == "open"
    assert AuditRecord.objects.filter(stream=f"case:{open_one.pk}").latest("seq").action == "case.reopen"
