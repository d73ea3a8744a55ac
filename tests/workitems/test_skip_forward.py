"""skip (an optional item no longer needed) and forward (offered to other candidates instead)."""

from __future__ import annotations

import pytest

from audit.models import AuditRecord
from events.models import OutboxEvent
from events.relay import CALLBACK_EVENT_TYPES
from tests import factories
from workitems import services
from workitems.errors import ConstraintViolated, InvalidTransition, NotAllowed, ValidationFailed
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db


# --- skip ---------------------------------------------------------------------------------


def test_skip_ends_an_optional_item_with_outcome_skipped_audited_and_announced(make_item, svc):
    item = make_item(optional=True)
    assert "skip" in services.allowed_actions_for(item, svc)
    item = services.work_item_skip(item_id=item.pk, actor=svc, reason="the claim was withdrawn", expected_version=1)
    assert (item.state, item.outcome, item.skipped, item.outcome_reason) == (
        "CANCELLED",
        "skipped",
        True,
        "the claim was withdrawn",
    )
    assert item.closed_at is not None and item.version == 2
    record = AuditRecord.objects.filter(work_item_id=item.pk).order_by("-seq").first()
    assert (record.action, record.from_state, record.to_state) == ("skip", "OFFERED", "CANCELLED")
    assert record.data["reason"] == "the claim was withdrawn"
    event = OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("-sequence").first()
    assert event.event_type == "workitem.skipped.v1"
    assert event.payload["work_item"]["outcome"] == "skipped"
    assert "workitem.skipped.v1" in CALLBACK_EVENT_TYPES  # the item's callback_url hears of it


def test_an_item_not_marked_optional_cannot_be_skipped(make_item, svc):
    item = make_item()
    assert "skip" not in services.allowed_actions_for(item, svc)
    with pytest.raises(InvalidTransition) as info:
        services.work_item_skip(item_id=item.pk, actor=svc)
    assert "cancel" in info.value.allowed_actions and "skip" not in info.value.allowed_actions
    assert WorkItem.objects.get(pk=item.pk).state == "OFFERED"


def test_skip_from_held_work_and_not_from_an_ended_item(make_item, svc, alice):
    item = services.work_item_claim(item_id=make_item(optional=True).pk, actor=alice)
    item = services.work_item_start(item_id=item.pk, actor=alice)
    assert services.work_item_skip(item_id=item.pk, actor=svc).outcome == "skipped"
    with pytest.raises(InvalidTransition):
        services.work_item_skip(item_id=item.pk, actor=svc)


def test_skip_by_the_creator_or_a_supervisor_only(make_item, svc, sam, alice):
    other_client = factories.user("svc2", roles=["service"])
    item = make_item(optional=True)
    with pytest.raises(NotAllowed):
        services.work_item_skip(item_id=item.pk, actor=other_client)
    with pytest.raises(NotAllowed):
        services.work_item_skip(item_id=item.pk, actor=alice)
    assert services.work_item_skip(item_id=item.pk, actor=sam).outcome == "skipped"


def test_a_cancelled_item_reads_outcome_cancelled(make_item, svc):
    item = services.work_item_cancel(item_id=make_item(optional=True).pk, actor=svc)
    assert (item.outcome, item.skipped) == ("cancelled", False)
    assert make_item().outcome is None


# --- forward --------------------------------------------------------------------------------


def test_forward_an_assigned_item_to_another_team(make_item, alice, bob, team_b):
    item = services.work_item_claim(item_id=make_item().pk, actor=alice)
    item = services.work_item_forward(item_id=item.pk, actor=alice, groups=["team-b"], expected_version=2)
    assert (item.state, item.assignee_id, item.version) == ("OFFERED", None, 3)
    fresh = WorkItem.objects.get(pk=item.pk)
    assert list(fresh.candidate_groups.values_list("name", flat=True)) == ["team-b"]
    assert list(fresh.candidate_users.all()) == []
    # potential ownership moved: bob may claim it, alice (team A) no longer may
    with pytest.raises(ConstraintViolated):
        services.work_item_claim(item_id=item.pk, actor=alice)
    assert services.work_item_claim(item_id=item.pk, actor=bob).assignee_id == bob.pk
    record = AuditRecord.objects.filter(work_item_id=item.pk, action="forward").get()
    assert (record.from_state, record.to_state, record.data["groups"]) == ("ASSIGNED", "OFFERED", ["team-b"])
    assert OutboxEvent.objects.filter(aggregate_id=str(item.pk), event_type="workitem.forwarded.v1").exists()


def test_forward_replaces_the_named_candidates(svc, queue, sam, alice, carol, bob):
    item = factories.item(actor=svc, queue=queue, candidate_users=["alice", "carol"])
    item = services.work_item_forward(item_id=item.pk, actor=sam, users=["carol", "bob"])
    fresh = WorkItem.objects.get(pk=item.pk)
    assert sorted(fresh.candidate_users.values_list("username", flat=True)) == ["bob", "carol"]
    assert sorted(item.list_names["candidate_users"]) == ["bob", "carol"]


def test_forward_in_a_push_queue_assigns_one_of_the_new_candidates(svc, team_a, sam, alice, carol, bob):
    q = factories.queue("push-q", groups=[team_a], strategy="least_loaded")
    item = factories.item(actor=svc, queue=q)
    assert item.assignee_id in (alice.pk, carol.pk)
    item = services.work_item_forward(item_id=item.pk, actor=sam, users=["bob"])
    assert (item.state, item.assignee_id) == ("ASSIGNED", bob.pk)


def test_forward_checks_its_targets_and_changes_nothing_when_refused(svc, queue, sam, alice, carol):
    item = factories.item(actor=svc, queue=queue, excluded_users=["carol"])
    with pytest.raises(ValidationFailed) as info:
        services.work_item_forward(item_id=item.pk, actor=sam, users=["nobody"], groups=["no-such-team"])
    assert [e["field"] for e in info.value.errors] == ["users", "groups"]
    with pytest.raises(ValidationFailed):
        services.work_item_forward(item_id=item.pk, actor=sam)  # no target at all
    with pytest.raises(ValidationFailed):
        services.work_item_forward(item_id=item.pk, actor=sam, users="alice")  # not a list
    carol_inactive = factories.user("dora", roles=["worker"], is_active=False)
    with pytest.raises(ValidationFailed) as info:
        services.work_item_forward(item_id=item.pk, actor=sam, users=[carol_inactive.username])
    assert "not active" in info.value.errors[0]["message"]
    with pytest.raises(ConstraintViolated) as info:
        services.work_item_forward(item_id=item.pk, actor=sam, users=["alice", "carol"])
    assert info.value.constraint == "excluded"
    fresh = WorkItem.objects.get(pk=item.pk)
    assert fresh.version == 1 and not fresh.candidate_users.exists()


def test_who_may_forward_and_from_which_states(make_item, alice, carol, sam):
    item = make_item()
    with pytest.raises(NotAllowed):  # an OFFERED item has no holder: a supervisor forwards it
        services.work_item_forward(item_id=item.pk, actor=alice, users=["carol"])
    item = services.work_item_claim(item_id=item.pk, actor=alice)
    with pytest.raises(NotAllowed):  # not carol's to forward
        services.work_item_forward(item_id=item.pk, actor=carol, users=["carol"])
    item = services.work_item_start(item_id=item.pk, actor=alice)
    with pytest.raises(InvalidTransition):  # started work is delegated or released, not forwarded
        services.work_item_forward(item_id=item.pk, actor=alice, users=["carol"])
    assert services.work_item_forward(item_id=make_item().pk, actor=sam, users=["carol"]).state == "OFFERED"


# --- REST ------------------------------------------------------------------------------------


def test_skip_and_forward_over_rest(api_as, make_item, svc, sam, alice, bob, team_b):
    item = make_item(optional=True)
    got = api_as(svc).get(f"/api/v1/workitems/{item.pk}").json()
    assert got["optional"] is True and got["outcome"] is None and "skip" in got["allowed_actions"]
    resp = api_as(svc).post(
        f"/api/v1/workitems/{item.pk}/skip", {"reason": "obsolete"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert resp.status_code == 200, resp.content
    assert (resp.json()["state"], resp.json()["outcome"]) == ("CANCELLED", "skipped")

    other = make_item()
    resp = api_as(sam).post(
        f"/api/v1/workitems/{other.pk}/forward", {"users": ["bob"], "groups": ["team-b"]}, format="json"
    )
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert (body["state"], body["candidate_users"], body["candidate_groups"]) == ("OFFERED", ["bob"], ["team-b"])
    assert body["version"] == 2 and resp["ETag"] == '"2"'


def test_forward_over_rest_refuses_bad_bodies_with_a_problem(api_as, make_item, sam):
    item = make_item()
    for body, field in (
        ({"users": ["ghost"]}, "users"),
        ({"users": "bob"}, "users"),
        ({}, "users"),
        ({"user": "bob"}, "user"),  # a misspelt member
    ):
        resp = api_as(sam).post(f"/api/v1/workitems/{item.pk}/forward", body, format="json")
        assert resp.status_code == 400, (body, resp.content)
        assert resp["Content-Type"].startswith("application/problem+json")
        assert resp.json()["errors"][0]["field"] == field
    resp = api_as(sam).post(f"/api/v1/workitems/{item.pk}/skip", {}, format="json")
    assert resp.status_code == 409 and "skip" not in resp.json()["allowed_actions"]
    assert WorkItem.objects.get(pk=item.pk).version == 1
