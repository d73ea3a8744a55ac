"""The item page: masked context, history, exactly the allowed actions, the result form from
the lifecycle's schema with inline errors, the stale-version message; every action through its
command, audited under the console channel."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditRecord
from tests import factories
from workitems import policy, services

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "object",
    "required": ["decision", "amount"],
    "properties": {
        "decision": {"enum": ["approve", "reject"]},
        "amount": {"type": "integer", "minimum": 0, "maximum": 1000},
        "note": {"type": "string"},
        "urgent": {"type": "boolean"},
    },
}


@pytest.fixture
def schema_queue(team_a):
    lifecycle = factories.lifecycle("reviewed", result_schema=SCHEMA)
    return factories.queue("reviews", groups=[team_a], lifecycle=lifecycle, sensitive_keys=["iban"])


def _actions(html: str) -> set[str]:
    return set(re.findall(r'data-testid="action-([a-z_]+)"', html))


def _started(svc, alice, queue):
    item = factories.item(actor=svc, queue=queue, assignee="alice")
    return services.work_item_start(item_id=item.pk, actor=alice)


def test_the_context_is_masked_as_the_api_masks_it(as_user, alice, sam, svc, schema_queue):
    item = factories.item(actor=svc, queue=schema_queue, context_data={"iban": "DE89 3704", "claim": 8812})
    worker = as_user(alice).get(f"/console/items/{item.pk}").content.decode()
    assert 'data-testid="context-iban">***<' in worker and "DE89" not in worker
    assert 'data-testid="context-claim">8812<' in worker
    supervisor = as_user(sam).get(f"/console/items/{item.pk}").content.decode()
    assert 'data-testid="context-iban">DE89 3704<' in supervisor


def test_an_item_of_another_team_is_not_found(as_user, bob, make_item):
    item = make_item()
    assert as_user(bob).get(f"/console/items/{item.pk}").status_code == 404
    assert as_user(bob).post(f"/console/items/{item.pk}/claim", {"version": item.version}).status_code == 404
    item.refresh_from_db()
    assert item.state == "OFFERED"


def test_the_page_offers_exactly_the_actions_allowed_now(as_user, alice, sam, make_item):
    item = make_item()
    for user in (alice, sam):
        html = as_user(user).get(f"/console/items/{item.pk}").content.decode()
        expected = set(policy.allowed_actions_for(item, user))
        inputs = {"assign-user", "delegate-user", "move-queue", "forward-users", "forward-groups"}
        shown = _actions(html) - {f"{a}-reason" for a in expected} - inputs
        assert shown == expected, user.username
    assert _actions(as_user(alice).get(f"/console/items/{item.pk}").content.decode()) == {"claim"}


def test_claim_start_complete_through_the_form_each_audited_as_console(as_user, alice, make_item):
    item = make_item()
    client = as_user(alice)
    for action in ("claim", "start"):
        item.refresh_from_db()
        response = client.post(f"/console/items/{item.pk}/{action}", {"version": item.version})
        assert response.status_code == 302 and response.headers["Location"] == f"/console/items/{item.pk}"
    item.refresh_from_db()
    assert item.state == "IN_PROGRESS"
    html = client.get(f"/console/items/{item.pk}").content.decode()
    assert 'data-testid="result-form"' in html and 'data-testid="result-field-result"' in html  # no schema: JSON
    done = client.post(f"/console/items/{item.pk}/complete", {"version": item.version, "result": '{"ok": true}'})
    assert done.status_code == 302
    item.refresh_from_db()
    assert item.state == "COMPLETED" and item.result == {"ok": True}
    records = list(AuditRecord.objects.filter(work_item=item).order_by("seq").values_list("action", "channel"))
    assert records[-3:] == [("claim", "console"), ("start", "console"), ("complete", "console")]
    history = client.get(f"/console/items/{item.pk}").content.decode()
    assert len(re.findall(r'data-testid="history-\d+"', history)) == len(records)


def test_the_result_form_follows_the_schema_and_shows_its_errors_inline(as_user, alice, svc, schema_queue):
    item = _started(svc, alice, schema_queue)
    client = as_user(alice)
    html = client.get(f"/console/items/{item.pk}").content.decode()
    assert '<select id="rf-decision" name="result__decision"' in html
    assert 'type="number" name="result__amount"' in html and 'step="1"' in html
    assert 'type="checkbox" name="result__urgent"' in html
    assert 'name="result__note"' in html
    # missing required decision, amount over the maximum: the schema's errors, each at its input
    refused = client.post(
        f"/console/items/{item.pk}/complete",
        {"version": item.version, "result__amount": "5000", "result__note": "checked"},
    )
    assert refused.status_code == 400
    page = refused.content.decode()
    assert 'data-testid="result-error-decision"' in page and "required" in page
    assert 'data-testid="result-error-amount"' in page and "5000 is greater than the maximum of 1000" in page
    assert 'value="checked"' in page  # what was typed stays
    item.refresh_from_db()
    assert item.state == "IN_PROGRESS"
    # a number that is not one never reaches the command
    bad = client.post(
        f"/console/items/{item.pk}/complete",
        {"version": item.version, "result__decision": "approve", "result__amount": "lots"},
    )
    assert bad.status_code == 400 and "must be a whole number" in bad.content.decode()
    ok = client.post(
        f"/console/items/{item.pk}/complete",
        {"version": item.version, "result__decision": "approve", "result__amount": "700", "result__urgent": "true"},
    )
    assert ok.status_code == 302
    item.refresh_from_db()
    assert item.state == "COMPLETED" and item.result == {"decision": "approve", "amount": 700, "urgent": True}


def test_a_stale_version_says_changed_meanwhile_and_changes_nothing(as_user, alice, sam, make_item):
    item = make_item(assignee="alice")
    old_version = item.version
    services.work_item_escalate(item_id=item.pk, actor=sam, reason="meanwhile")
    response = as_user(alice).post(f"/console/items/{item.pk}/start", {"version": old_version})
    assert response.status_code == 409
    html = response.content.decode()
    assert 'data-testid="stale-message"' in html and "changed meanwhile" in html
    assert 'data-testid="stale-reload"' in html
    item.refresh_from_db()
    assert item.state == "ASSIGNED"
    assert f'name="version" value="{item.version}"' in html  # the page shows the item as it is now


def test_an_action_not_allowed_now_is_a_message_on_the_page(as_user, alice, make_item):
    item = make_item()
    response = as_user(alice).post(f"/console/items/{item.pk}/start", {"version": item.version})
    assert response.status_code in (403, 409)
    assert 'data-testid="action-error"' in response.content.decode()
    item.refresh_from_db()
    assert item.state == "OFFERED"


def test_a_supervisor_reassigns_and_moves_from_the_item_page(as_user, alice, carol, sam, make_item, team_a):
    other = factories.queue("team-a-second", groups=[team_a])
    item = make_item(assignee="alice")
    client = as_user(sam)
    html = client.get(f"/console/items/{item.pk}").content.decode()
    assert '<option value="carol">carol</option>' in html
    response = client.post(f"/console/items/{item.pk}/delegate", {"version": item.version, "user": "carol"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.assignee == carol
    moved = client.post(f"/console/items/{item.pk}/move", {"version": item.version, "queue": other.name})
    assert moved.status_code == 302
    item.refresh_from_db()
    assert item.queue == other
    actions = list(AuditRecord.objects.filter(work_item=item).order_by("seq").values_list("action", "channel"))
    assert actions[-2:] == [("delegate", "console"), ("move", "console")]


def test_bad_input_for_an_action_is_the_commands_message(as_user, sam, make_item):
    item = make_item()
    response = as_user(sam).post(f"/console/items/{item.pk}/move", {"version": item.version, "queue": "nowhere"})
    assert response.status_code == 400
    assert "unknown queue" in response.content.decode()


def test_an_unknown_action_is_not_found_and_get_is_not_allowed(as_user, alice, make_item):
    item = make_item()
    client = as_user(alice)
    assert client.post(f"/console/items/{item.pk}/explode", {}).status_code == 404
    assert client.post(f"/console/items/{item.pk}/offer", {}).status_code == 404  # a system step
    assert client.get(f"/console/items/{item.pk}/claim").status_code == 405


def test_a_supervisor_changes_priority_and_due_date_from_the_item_page(as_user, alice, sam, make_item):
    item = make_item(priority=40)
    assert 'data-testid="update-form"' not in as_user(alice).get(f"/console/items/{item.pk}").content.decode()
    client = as_user(sam)
    assert 'data-testid="update-form"' in client.get(f"/console/items/{item.pk}").content.decode()
    response = client.post(
        f"/console/items/{item.pk}/update",
        {"version": item.version, "priority": "75", "due_at": "2031-05-04T09:30", "reason": "VIP"},
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.priority, item.due_at.isoformat()) == (75, "2031-05-04T09:30:00+00:00")
    record = AuditRecord.objects.filter(work_item=item).order_by("-seq").first()
    assert (record.action, record.channel, record.data["reason"]) == ("update", "console", "VIP")
    assert record.data["changes"]["priority"] == [40, 75]

    bad = client.post(f"/console/items/{item.pk}/update", {"version": item.version, "priority": "high"})
    assert bad.status_code == 400 and "priority: an integer from 0 to 100" in bad.content.decode()
    no_day = client.post(f"/console/items/{item.pk}/update", {"version": item.version, "due_at": "2031-02-30T09:30"})
    assert no_day.status_code == 400 and "due_at: must" in no_day.content.decode()
    item.refresh_from_db()
    assert item.due_at.isoformat() == "2031-05-04T09:30:00+00:00", "a refused date changes nothing"
    cleared = client.post(f"/console/items/{item.pk}/update", {"version": item.version, "clear_due": "1"})
    assert cleared.status_code == 302
    item.refresh_from_db()
    assert item.due_at is None
    # a worker cannot fire it by posting either
    assert as_user(alice).post(f"/console/items/{item.pk}/update", {"priority": "99"}).status_code == 403


def test_skip_and_forward_through_their_forms(as_user, sam, bob, make_item, team_b):
    optional = make_item(optional=True)
    html = as_user(sam).get(f"/console/items/{optional.pk}").content.decode()
    assert 'data-testid="action-skip-reason"' in html  # skip takes a reason, as cancel does
    done = as_user(sam).post(f"/console/items/{optional.pk}/skip", {"version": 1, "reason": "obsolete"})
    assert done.status_code == 302
    optional.refresh_from_db()
    assert (optional.outcome, optional.outcome_reason) == ("skipped", "obsolete")
    assert "skip" not in _actions(as_user(sam).get(f"/console/items/{make_item().pk}").content.decode())

    item = make_item()
    client = as_user(sam)
    assert 'data-testid="action-forward-users"' in client.get(f"/console/items/{item.pk}").content.decode()
    refused = client.post(f"/console/items/{item.pk}/forward", {"version": 1, "users": "", "groups": ""})
    assert refused.status_code == 400 and "at least one" in refused.content.decode()
    done = client.post(f"/console/items/{item.pk}/forward", {"version": 1, "users": "bob", "groups": " team-b , "})
    assert done.status_code == 302
    item.refresh_from_db()
    assert list(item.candidate_users.values_list("username", flat=True)) == ["bob"]
    assert list(item.candidate_groups.values_list("name", flat=True)) == ["team-b"]
    assert AuditRecord.objects.filter(work_item=item, action="forward", channel="console").exists()
