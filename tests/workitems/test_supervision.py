"""A supervisor's `update` (priority, due date, follow-up date; PATCH /workitems/{id}) and
`reassign` (assign or delegate, decided with the row locked): audited and evented, refusals
change nothing, a no-op changes nothing, the SLA state follows a moved deadline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditRecord
from audit.services import audit_verify
from events import inbound
from events.models import OutboxEvent
from tests import factories
from tests.factories import observed
from workitems import services
from workitems.errors import ConstraintViolated, InvalidTransition, NotAllowed, StaleVersion, ValidationFailed
from workitems.models import SlaState, State, WorkItem


def last_record(item):
    return AuditRecord.objects.filter(work_item_id=item.pk).order_by("-seq").first()


def events_of(item):
    return list(
        OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("sequence").values_list("event_type", flat=True)
    )


def iso(value):
    return value.isoformat().replace("+00:00", "Z")


def test_update_changes_priority_and_dates_audited_and_evented(make_item, sam):
    item = make_item()
    due = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    follow = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    updated = services.work_item_update(
        item_id=item.pk,
        actor=sam,
        changes={"priority": 90, "due_at": iso(due), "follow_up_at": iso(follow)},
        expected_version=item.version,
        reason="customer called",
    )
    assert (updated.priority, updated.due_at, updated.follow_up_at) == (90, due, follow)
    assert (updated.state, updated.version) == (item.state, item.version + 1)
    record = last_record(item)
    assert (record.action, record.actor_id, record.from_state, record.to_state) == (
        "update",
        sam.pk,
        "OFFERED",
        "OFFERED",
    )
    assert record.data["changes"]["priority"] == [item.priority, 90]
    assert record.data["changes"]["due_at"] == [None, iso(due)]
    assert record.data["reason"] == "customer called"
    assert events_of(item)[-1] == "workitem.updated.v1"
    event = OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("-sequence").first()
    assert event.payload["work_item"]["priority"] == 90
    assert event.payload["transition"]["changes"]["priority"] == [item.priority, 90]
    assert audit_verify(stream=f"workitem:{item.pk}").ok


def test_the_same_values_change_nothing(make_item, sam):
    item = make_item(priority=60)
    before = observed(item.pk)
    same = services.work_item_update(item_id=item.pk, actor=sam, changes={"priority": 60})
    assert same.version == item.version
    assert observed(item.pk) == before
    nothing = services.work_item_update(item_id=item.pk, actor=sam, changes={})
    assert nothing.version == item.version and observed(item.pk) == before


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"priority": 101}, "priority"),
        ({"priority": True}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"due_at": "tomorrow"}, "due_at"),
        ({"due_at": "2026-12-30T10:00:00"}, "due_at"),  # no zone
        ({"follow_up_at": 17}, "follow_up_at"),
        ({"title": "new"}, "title"),
    ],
)
def test_bad_changes_are_refused_naming_the_field_and_change_nothing(make_item, sam, changes, field):
    item = make_item()
    before = observed(item.pk)
    with pytest.raises(ValidationFailed) as exc:
        services.work_item_update(item_id=item.pk, actor=sam, changes=changes)
    assert field in {e["field"] for e in exc.value.errors}
    assert observed(item.pk) == before


def test_workers_may_not_update_and_terminal_items_cannot_be(make_item, alice, sam, svc):
    item = make_item()
    with pytest.raises(NotAllowed):
        services.work_item_update(item_id=item.pk, actor=alice, changes={"priority": 99})
    cancelled = services.work_item_cancel(item_id=item.pk, actor=svc)
    with pytest.raises(InvalidTransition):
        services.work_item_update(item_id=cancelled.pk, actor=sam, changes={"priority": 99})
    with pytest.raises(StaleVersion):
        services.work_item_update(item_id=make_item().pk, actor=sam, changes={"priority": 99}, expected_version=7)


def test_more_time_brings_a_breached_item_back_on_track_and_less_is_left_to_the_scan(team_a, svc, sam):
    q = factories.queue("sla-upd", groups=[team_a], sla=timedelta(hours=4))
    item = factories.item(actor=svc, queue=q)
    services.sla_scan(now=item.due_at + timedelta(minutes=1))
    item.refresh_from_db()
    assert item.sla_state == SlaState.BREACHED

    later = timezone.now() + timedelta(days=3)
    item = services.work_item_update(item_id=item.pk, actor=sam, changes={"due_at": iso(later)})
    assert item.sla_state == SlaState.ON_TRACK
    assert item.sla_next_at is not None and item.sla_next_at > timezone.now()

    # pulled in to the past: the state stays until the scan moves it, with its own events
    past = timezone.now() - timedelta(minutes=5)
    item = services.work_item_update(item_id=item.pk, actor=sam, changes={"due_at": iso(past)})
    assert item.sla_state == SlaState.ON_TRACK and item.sla_next_at <= timezone.now()
    assert services.sla_scan() == 1
    item.refresh_from_db()
    assert item.sla_state == SlaState.BREACHED
    assert events_of(item)[-2:] == ["workitem.sla_at_risk.v1", "workitem.sla_breached.v1"]

    cleared = services.work_item_update(item_id=item.pk, actor=sam, changes={"due_at": None})
    assert (cleared.due_at, cleared.sla_state, cleared.sla_next_at) == (None, SlaState.NONE, None)


def test_reassign_assigns_an_unheld_item_and_delegates_a_held_one(make_item, alice, carol, sam):
    offered = make_item()
    given = services.work_item_reassign(item_id=offered.pk, actor=sam, user="carol")
    assert (given.state, given.assignee_id, last_record(given).action) == (State.ASSIGNED, carol.pk, "assign")

    held = services.work_item_claim(item_id=make_item().pk, actor=alice)
    handed = services.work_item_reassign(item_id=held.pk, actor=sam, user=carol, expected_version=held.version)
    assert (handed.state, handed.assignee_id, last_record(handed).action) == (State.ASSIGNED, carol.pk, "delegate")


def test_reassign_refusals_change_nothing(make_item, alice, bob, sam, svc):
    item = make_item()
    before = observed(item.pk)
    with pytest.raises(NotAllowed):  # a worker may not assign an item nobody holds
        services.work_item_reassign(item_id=item.pk, actor=alice, user="alice")
    with pytest.raises(ConstraintViolated) as exc:  # bob is not in the item's pool
        services.work_item_reassign(item_id=item.pk, actor=sam, user="bob")
    assert exc.value.constraint == "candidate"
    assert observed(item.pk) == before
    done = services.work_item_cancel(item_id=item.pk, actor=svc)
    with pytest.raises(InvalidTransition):
        services.work_item_reassign(item_id=done.pk, actor=sam, user="alice")


def test_patch_over_rest_with_if_match(make_item, sam, alice, api_as):
    item = make_item()
    url = f"/api/v1/workitems/{item.pk}"
    ok = api_as(sam).patch(url, {"priority": 80}, format="json", HTTP_IF_MATCH=f'"{item.version}"')
    assert ok.status_code == 200, ok.content
    assert ok.json()["priority"] == 80 and ok["ETag"] == f'"{item.version + 1}"'

    stale = api_as(sam).patch(url, {"priority": 81}, format="json", HTTP_IF_MATCH=f'"{item.version}"')
    assert stale.status_code == 412
    unknown = api_as(sam).patch(url, {"prio": 1}, format="json")
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "prio"
    bad = api_as(sam).patch(url, {"due_at": "soon"}, format="json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "due_at"
    worker = api_as(alice).patch(url, {"priority": 10}, format="json")
    assert worker.status_code == 403
    assert WorkItem.objects.get(pk=item.pk).priority == 80


def test_update_over_the_bus(make_item, sam, alice):
    item = make_item()
    assert "update" in inbound.COMMANDS
    done = inbound.apply(
        {
            "command_id": "upd-1",
            "command": "update",
            "actor": "sam",
            "item_id": item.pk,
            "changes": {"priority": 88},
            "reason": "escalated by the engine",
        }
    )
    assert done == inbound.APPLIED
    assert WorkItem.objects.get(pk=item.pk).priority == 88
    assert last_record(item).data["reason"] == "escalated by the engine"
    for n, cmd in enumerate(
        [
            {"actor": "sam", "changes": {"priority": 500}},  # bad value
            {"actor": "sam", "changes": "high"},  # not an object
            {"actor": "alice", "changes": {"priority": 1}},  # a worker may not
        ]
    ):
        outcome = inbound.apply({"command_id": f"upd-bad-{n}", "command": "update", "item_id": item.pk, **cmd})
        assert outcome == inbound.REJECTED
    assert WorkItem.objects.get(pk=item.pk).priority == 88
