"""The `move` command: to another queue, by supervisors, admins or the system; an ASSIGNED
holder released and the item distributed again by the target queue; audited and evented;
refusals change nothing. Through the services, REST and the bus."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from audit.models import AuditRecord
from events import inbound
from events.models import OutboxEvent
from tests import factories
from tests.factories import observed
from workitems import services
from workitems.errors import Conflict, InvalidTransition, NotAllowed, ValidationFailed
from workitems.models import State


@pytest.fixture
def elsewhere(team_b):
    return factories.queue("elsewhere", groups=[team_b])


def last_record(item):
    return AuditRecord.objects.filter(work_item_id=item.pk).order_by("-seq").first()


def last_event(item):
    return OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("-sequence").first()


def test_an_offered_item_moves_audited_and_evented(make_item, sam, elsewhere):
    item = make_item()
    moved = services.work_item_move(item_id=item.pk, actor=sam, queue="elsewhere", reason="wrong team")
    assert (moved.state, moved.queue_id, moved.version) == (State.OFFERED, elsewhere.pk, item.version + 1)
    record = last_record(item)
    assert (record.action, record.actor_id, record.from_state, record.to_state) == (
        "move",
        sam.pk,
        "OFFERED",
        "OFFERED",
    )
    assert record.data["from_queue"] == "team-a-queue" and record.data["to_queue"] == "elsewhere"
    assert record.data["reason"] == "wrong team"
    event = last_event(item)
    assert event.event_type == "workitem.moved.v1"
    assert event.payload["work_item"]["queue"] == "elsewhere"
    assert event.payload["transition"]["to_queue"] == "elsewhere"


def test_an_assigned_item_is_released_and_distributed_in_the_target_queue(make_item, alice, bob, sam, team_b):
    push_q = factories.queue("push-b", groups=[team_b], strategy="round_robin")
    item = services.work_item_claim(item_id=make_item().pk, actor=alice)
    moved = services.work_item_move(item_id=item.pk, actor=sam, queue=push_q)
    # released from alice (not in team B) and pushed to bob, the target queue's only member
    assert (moved.state, moved.assignee_id, moved.queue_id) == (State.ASSIGNED, bob.pk, push_q.pk)
    actions = list(AuditRecord.objects.filter(work_item_id=item.pk).order_by("seq").values_list("action", "data"))
    assert [a for a, _ in actions[-2:]] == ["move", "assign"]
    assert actions[-2][1]["released"] == "alice"
    types = [e.event_type for e in OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("sequence")]
    assert types[-2:] == ["workitem.moved.v1", "workitem.assigned.v1"]


def test_started_work_keeps_its_holder_and_a_reservation_is_dropped(make_item, alice, sam, svc, elsewhere, queue):
    started = services.work_item_start(
        item_id=services.work_item_claim(item_id=make_item().pk, actor=alice).pk, actor=alice
    )
    moved = services.work_item_move(item_id=started.pk, actor=sam, queue="elsewhere")
    assert (moved.state, moved.assignee_id, moved.queue_id) == (State.IN_PROGRESS, alice.pk, elsewhere.pk)

    queue.reservation_timeout = dt.timedelta(hours=1)
    queue.save()
    reserved = factories.item(actor=svc, queue=queue, assignee="alice")
    assert reserved.reserved_for_id == alice.pk
    moved = services.work_item_move(item_id=reserved.pk, actor=None, queue="elsewhere")  # the system
    assert (moved.state, moved.reserved_for_id, moved.reserved_until, moved.assignee_id) == (
        State.OFFERED,
        None,
        None,
        None,
    )
    assert last_record(moved).data["reservation_dropped"] == "alice"
    assert last_record(moved).actor_id is None


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere", "unknown queue 'nowhere'"),
        ("closed", "queue closed is not active"),
        ("", "the name of the queue"),
        (None, "the name of the queue"),
        (7, "the name of the queue"),
    ],
)
def test_a_bad_target_is_refused_and_changes_nothing(make_item, sam, target, message):
    factories.queue("closed", active=False)
    item = make_item()
    before = observed(item.pk)
    with pytest.raises(ValidationFailed) as info:
        services.work_item_move(item_id=item.pk, actor=sam, queue=target)
    assert info.value.errors[0]["field"] == "queue" and message in info.value.errors[0]["message"]
    assert observed(item.pk) == before


def test_a_move_to_the_queue_it_is_in_is_a_conflict(make_item, sam):
    item = make_item()
    before = observed(item.pk)
    with pytest.raises(Conflict, match="already in queue team-a-queue"):
        services.work_item_move(item_id=item.pk, actor=sam, queue="team-a-queue")
    assert observed(item.pk) == before


def test_workers_and_services_may_not_move_and_closed_items_do_not(make_item, alice, svc, sam, elsewhere):
    item = make_item()
    for actor in (alice, svc):
        before = observed(item.pk)
        with pytest.raises(NotAllowed):
            services.work_item_move(item_id=item.pk, actor=actor, queue="elsewhere")
        assert observed(item.pk) == before
    # a worker's refusal does not say whether the queue exists (403 before the queue check)
    with pytest.raises(NotAllowed):
        services.work_item_move(item_id=item.pk, actor=alice, queue="nowhere")
    done = services.work_item_cancel(item_id=item.pk, actor=svc, reason="withdrawn")
    with pytest.raises(InvalidTransition):
        services.work_item_move(item_id=done.pk, actor=sam, queue="elsewhere")


def test_move_over_rest(make_item, sam, alice, elsewhere):
    item = make_item()
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(sam)
    for body, field in (({}, "queue"), ({"queue": 5}, "queue"), ({"queue": "nowhere"}, "queue")):
        resp = client.post(f"/api/v1/workitems/{item.pk}/move", body, format="json")
        assert resp.status_code == 400, resp.content
        assert field in str(resp.json()["errors"])
    worker = APIClient(raise_request_exception=False)
    worker.force_authenticate(alice)
    assert worker.post(f"/api/v1/workitems/{item.pk}/move", {"queue": "elsewhere"}, format="json").status_code == 403
    resp = client.post(
        f"/api/v1/workitems/{item.pk}/move",
        {"queue": "elsewhere"},
        format="json",
        HTTP_IF_MATCH=f'"{item.version}"',
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["queue"] == "elsewhere" and resp.json()["state"] == "OFFERED"
    stale = client.post(
        f"/api/v1/workitems/{item.pk}/move", {"queue": "team-a-queue"}, format="json", HTTP_IF_MATCH=f'"{item.version}"'
    )
    assert stale.status_code == 412


def test_move_over_the_bus(make_item, sam, elsewhere):
    item = make_item()
    assert "move" in inbound.COMMANDS
    outcome = inbound.apply(
        {"command_id": "mv-1", "command": "move", "actor": "sam", "item_id": item.pk, "queue": "elsewhere"}
    )
    assert outcome == inbound.APPLIED
    item.refresh_from_db()
    assert item.queue_id == elsewhere.pk
    bad = inbound.apply({"command_id": "mv-2", "command": "move", "actor": "sam", "item_id": item.pk, "queue": 3})
    assert bad == inbound.REJECTED
