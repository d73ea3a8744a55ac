"""Role-based view masking: a queue's sensitive context_data keys are masked for workers."""

from __future__ import annotations

import pytest

from tests import factories
from workitems import services

CONTEXT = {"ssn": "123-45-6789", "name": "Ada", "nested": {"ssn": "inner stays"}}


@pytest.fixture
def sensitive_item(svc, team_a):
    q = factories.queue("hr", groups=[team_a], sensitive_keys=["ssn"])
    return factories.item(actor=svc, queue=q, context_data=CONTEXT)


@pytest.mark.parametrize(
    ("persona", "ssn"),
    [("alice", "***"), ("carol", "***"), ("sam", "123-45-6789"), ("admin", "123-45-6789"), ("svc", "123-45-6789")],
)
def test_item_representation_masks_for_workers_only(request, api, sensitive_item, persona, ssn):
    client = api(request.getfixturevalue(persona))
    got = client.get(f"/api/v1/workitems/{sensitive_item.pk}").json()["context_data"]
    assert got == {**CONTEXT, "ssn": ssn}
    listed = client.get("/api/v1/workitems?queue=hr").json()["results"]
    assert [r["context_data"]["ssn"] for r in listed] == [ssn]


def test_masked_for_the_assignee_too_and_in_action_responses(api, alice, sensitive_item):
    resp = api(alice).post(f"/api/v1/workitems/{sensitive_item.pk}/claim")
    assert resp.status_code == 200
    assert resp.json()["context_data"]["ssn"] == "***"
    assert resp.json()["context_data"]["name"] == "Ada"


def test_masking_changes_nothing_stored(api, alice, sensitive_item):
    api(alice).get(f"/api/v1/workitems/{sensitive_item.pk}")
    sensitive_item.refresh_from_db()
    assert sensitive_item.context_data == CONTEXT


def test_a_queue_without_sensitive_keys_shows_everything(api, alice, make_item):
    item = make_item(context_data={"ssn": "1"})
    assert api(alice).get(f"/api/v1/workitems/{item.pk}").json()["context_data"] == {"ssn": "1"}


def test_worker_claim_next_response_is_masked(api, alice, sensitive_item):
    resp = api(alice).post("/api/v1/workitems/claim-next", {"queue": "hr"}, format="json")
    assert resp.status_code == 200 and resp.json()["id"] == sensitive_item.pk
    assert resp.json()["context_data"]["ssn"] == "***"


def test_supervisor_sees_the_value_after_a_worker_action(api, alice, sam, sensitive_item):
    services.work_item_claim(item_id=sensitive_item.pk, actor=alice)
    assert api(sam).get(f"/api/v1/workitems/{sensitive_item.pk}").json()["context_data"]["ssn"] == "123-45-6789"
