"""View masking: a queue's sensitive context_data keys are unmasked only for the item's
creating client and the platform roles the queue names (`sensitive_roles`, default admin and
supervisor); everyone else, and every event, reads "***" (policy.sees_sensitive)."""

from __future__ import annotations

import json

import pytest

from events.models import OutboxEvent
from tests import factories
from workitems import services

CONTEXT = {"ssn": "123-45-6789", "name": "Ada", "nested": {"ssn": "inner stays"}}
SSN = CONTEXT["ssn"]


@pytest.fixture
def svc2(db):
    """Another service client: a workflow engine that did not create the item."""
    return factories.user("svc2", roles=["service"])


@pytest.fixture
def sensitive_item(svc, team_a):
    q = factories.queue("hr", groups=[team_a], sensitive_keys=["ssn"])
    return factories.item(actor=svc, queue=q, context_data=CONTEXT)


def _seen(client, item_id: int, queue: str = "hr") -> tuple[str, list[str]]:
    """The ssn as the detail and as the list show it to `client`."""
    got = client.get(f"/api/v1/workitems/{item_id}").json()["context_data"]
    assert {k: v for k, v in got.items() if k != "ssn"} == {k: v for k, v in CONTEXT.items() if k != "ssn"}
    listed = client.get(f"/api/v1/workitems?queue={queue}").json()["results"]
    return got["ssn"], [r["context_data"]["ssn"] for r in listed if r["id"] == item_id]


@pytest.mark.parametrize(
    ("persona", "ssn"),
    [("alice", "***"), ("carol", "***"), ("sam", SSN), ("admin", SSN), ("svc", SSN), ("svc2", "***")],
)
def test_item_representation_unmasks_for_the_creator_and_the_default_roles_only(
    request, api, sensitive_item, persona, ssn
):
    client = api(request.getfixturevalue(persona))
    assert _seen(client, sensitive_item.pk) == (ssn, [ssn])


@pytest.mark.parametrize(
    ("roles", "unmasked"),
    [
        (["admin"], {"admin", "svc"}),
        (["supervisor"], {"sam", "svc"}),
        (["worker"], {"alice", "carol", "svc"}),
        (["service"], {"svc", "svc2"}),
        ([], {"svc"}),  # only the creating client
        (["admin", "supervisor"], {"admin", "sam", "svc"}),
    ],
)
def test_the_queue_names_the_roles_that_read_sensitive_keys(request, api, admin, svc, svc2, team_a, roles, unmasked):
    q = factories.queue("hr", groups=[team_a], sensitive_keys=["ssn"])
    assert q.sensitive_roles == ["admin", "supervisor"]  # the default
    resp = api(admin).patch("/api/v1/queues/hr", {"sensitive_roles": roles}, format="json")
    assert resp.status_code == 200 and resp.json()["sensitive_roles"] == sorted(roles)
    item = factories.item(actor=svc, queue=q, context_data=CONTEXT)
    for persona in ("alice", "carol", "sam", "admin", "svc", "svc2"):
        expected = SSN if persona in unmasked else "***"
        assert _seen(api(request.getfixturevalue(persona)), item.pk) == (expected, [expected]), persona


def test_a_supervisor_who_created_the_item_reads_it_even_when_the_queue_names_only_admins(api, sam, alice, team_a):
    q = factories.queue("hr", groups=[team_a], sensitive_keys=["ssn"], sensitive_roles=["admin"])
    mine = factories.item(actor=sam, queue=q, context_data=CONTEXT)
    theirs = factories.item(actor=factories.user("svc3", roles=["service"]), queue=q, context_data=CONTEXT)
    assert _seen(api(sam), mine.pk)[0] == SSN
    assert _seen(api(sam), theirs.pk)[0] == "***"
    assert _seen(api(alice), mine.pk)[0] == "***"


def test_action_and_bulk_answers_are_masked_for_another_service(api, svc, svc2, sam, team_a):
    q = factories.queue("hr", groups=[team_a], sensitive_keys=["ssn"])
    body = {"workflow_id": "wf", "task_name": "t", "queue": "hr", "context_data": CONTEXT}
    created = api(svc).post("/api/v1/workitems/bulk", {"items": [body, body]}, format="json")
    assert created.status_code == 201, created.json()
    assert [i["context_data"]["ssn"] for i in created.json()["items"]] == [SSN, SSN]  # the creator
    item_id = created.json()["items"][0]["id"]
    assert api(svc2).post(f"/api/v1/workitems/{item_id}/cancel", {}, format="json").status_code == 403
    resp = api(sam).post(f"/api/v1/workitems/{item_id}/escalate", {}, format="json")
    assert resp.status_code == 200 and resp.json()["context_data"]["ssn"] == SSN
    assert api(svc2).get(f"/api/v1/workitems/{item_id}").json()["context_data"]["ssn"] == "***"
    assert q.sensitive_roles == ["admin", "supervisor"]


def test_history_and_events_never_carry_the_sensitive_value(api, svc, svc2, alice, sensitive_item):
    services.work_item_claim(item_id=sensitive_item.pk, actor=alice)
    for persona in (svc, svc2, alice):
        history = api(persona).get(f"/api/v1/workitems/{sensitive_item.pk}/history")
        assert history.status_code == 200 and [r["action"] for r in history.json()] == ["create", "claim"]
        assert SSN not in history.content.decode()
    payloads = list(OutboxEvent.objects.filter(aggregate_id=sensitive_item.pk).values_list("payload", flat=True))
    assert len(payloads) == 2
    for payload in payloads:
        # the bus and webhooks reach every subscriber: the sensitive key is masked, the rest is there
        assert payload["work_item"]["context_data"] == {**CONTEXT, "ssn": "***"}
        assert SSN not in json.dumps(payload)


def test_queue_api_validates_and_shows_sensitive_roles(api, admin, sam, team_a):
    resp = api(admin).post("/api/v1/queues", {"name": "kyc", "sensitive_keys": ["iban"]}, format="json")
    assert resp.status_code == 201 and resp.json()["sensitive_roles"] == ["admin", "supervisor"]
    resp = api(admin).post(
        "/api/v1/queues", {"name": "kyc2", "sensitive_roles": ["supervisor", "supervisor"]}, format="json"
    )
    assert resp.status_code == 201 and resp.json()["sensitive_roles"] == ["supervisor"]
    for bad in (["boss"], "admin", [1], {"admin": True}, ["admin", "system"]):
        resp = api(admin).patch("/api/v1/queues/kyc", {"sensitive_roles": bad}, format="json")
        assert resp.status_code == 400, bad
        assert [e["field"] for e in resp.json()["errors"]] == ["sensitive_roles"]
    # [] leaves only the creating client; null (a blank admin field) is the default again
    assert (
        api(admin).patch("/api/v1/queues/kyc", {"sensitive_roles": []}, format="json").json()["sensitive_roles"] == []
    )
    resp = api(admin).patch("/api/v1/queues/kyc", {"sensitive_roles": None}, format="json")
    assert resp.status_code == 200 and resp.json()["sensitive_roles"] == ["admin", "supervisor"]
    assert api(sam).patch("/api/v1/queues/kyc", {"sensitive_roles": ["worker"]}, format="json").status_code == 403
    assert api(sam).get("/api/v1/queues/kyc").json()["sensitive_roles"] == ["admin", "supervisor"]


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
