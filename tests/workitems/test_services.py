"""The service layer: one transaction per command, validation, versions, request context."""

from __future__ import annotations

import datetime as dt

import pytest

from audit import services as audit_services
from audit.models import AuditRecord
from config.context import acting
from events import outbox
from events.models import OutboxEvent
from tests import factories
from tests.factories import item_body, observed
from workitems import services
from workitems.errors import NotAllowed, NotFound, StaleVersion, ValidationFailed
from workitems.models import WorkItem


class Boom(Exception):
    """The fault a test injects after the transition has run."""


def _counts() -> tuple[int, int, int]:
    return WorkItem.objects.count(), AuditRecord.objects.count(), OutboxEvent.objects.count()


# --- one transaction: a failure after the transition leaves nothing behind ------------------


def test_outbox_failure_rolls_back_the_transition_and_the_audit_record(make_item, alice, monkeypatch):
    item = make_item()
    before = observed(item.pk)

    def refuse(**kwargs):
        raise Boom("outbox insert failed")

    monkeypatch.setattr(outbox, "outbox_event", refuse)  # every outbox row is built here
    with pytest.raises(Boom):
        services.work_item_claim(item_id=item.pk, actor=alice)
    monkeypatch.undo()

    assert observed(item.pk) == before  # state, version, assignee, audit and outbox counts
    assert before["state"] == "OFFERED" and before["row"]["assignee_id"] is None
    # and the item is still usable: the same command now goes through
    item = services.work_item_claim(item_id=item.pk, actor=alice)
    assert (item.state, item.version) == ("ASSIGNED", 2)
    assert audit_services.audit_verify(stream=f"workitem:{item.pk}").ok


def test_audit_failure_after_the_save_rolls_back_the_transition(make_item, alice, sam, monkeypatch):
    item = make_item()
    services.work_item_claim(item_id=item.pk, actor=alice)
    before = observed(item.pk)
    calls = []

    def record_then_fail(**kwargs):
        audit_services.audit_record(**kwargs)
        kwargs["batch"].run()  # the change's statement (item, audit record, head) is sent, then the command fails
        calls.append(kwargs["action"])
        raise Boom("after the audit record")

    monkeypatch.setattr(services._core, "audit_record", record_then_fail)
    with pytest.raises(Boom):
        services.work_item_suspend(item_id=item.pk, actor=sam, reason="hold")
    assert calls == ["suspend"]
    assert observed(item.pk) == before
    assert WorkItem.objects.get(pk=item.pk).state == "ASSIGNED"


def test_a_failing_create_leaves_no_item_audit_or_event(svc, queue, monkeypatch):
    before = _counts()

    def refuse(**kwargs):
        raise Boom("outbox insert failed")

    monkeypatch.setattr(outbox, "outbox_event", refuse)
    with pytest.raises(Boom):
        services.work_item_create(actor=svc, data=item_body(queue))
    assert _counts() == before


def test_bulk_create_with_one_bad_entry_creates_nothing_and_names_the_index(svc, queue):
    before = _counts()
    bodies = [item_body(queue), item_body(queue, priority=101), item_body(queue, bogus=1)]
    with pytest.raises(ValidationFailed) as info:
        services.work_item_create_many(actor=svc, items=bodies)
    fields = {e["field"] for e in info.value.errors}
    assert fields == {"items[1].priority", "items[2].bogus"}
    assert _counts() == before


def test_bulk_create_semantic_error_at_one_index_creates_nothing(svc, queue):
    before = _counts()
    bodies = [item_body(queue), item_body(queue), item_body(queue, candidate_users=["nobody"])]
    with pytest.raises(ValidationFailed) as info:
        services.work_item_create_many(actor=svc, items=bodies)
    assert [e["field"] for e in info.value.errors] == ["items[2].candidate_users"]
    assert "nobody" in info.value.errors[0]["message"]
    assert _counts() == before


def test_bulk_create_rolls_back_items_already_inserted(svc, queue, monkeypatch):
    """Items 0 and 1 are inserted (with their audit records) before item 2's event fails: all go."""
    before = _counts()
    real_event = outbox.outbox_event
    calls = []

    def third_fails(**kwargs):
        calls.append(kwargs["event_type"])
        if len(calls) == 3:
            raise Boom("outbox insert failed for the third item")
        return real_event(**kwargs)

    monkeypatch.setattr(outbox, "outbox_event", third_fails)
    with pytest.raises(Boom):
        services.work_item_create_many(actor=svc, items=[item_body(queue) for _ in range(3)])
    assert calls == ["workitem.created.v1"] * 3
    assert _counts() == before


def test_a_direct_assignee_who_may_not_hold_the_item_leaves_it_offered(svc, queue, alice):
    """Not an error: the item stays OFFERED and `workitem.unassigned.v1` names the constraint."""
    item = services.work_item_create(actor=svc, data=item_body(queue, assignee="alice", excluded_users=["alice"]))
    assert (item.state, item.assignee_id, item.version) == ("OFFERED", None, 1)
    events = list(OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("sequence"))
    assert [(e.event_type, e.sequence) for e in events] == [("workitem.created.v1", 1), ("workitem.unassigned.v1", 2)]
    assert events[1].payload["transition"]["reason"] == "excluded"
    assert AuditRecord.objects.filter(work_item=item).count() == 1  # not a change of the item


def test_bulk_create_all_good(svc, queue, alice):
    items = services.work_item_create_many(
        actor=svc, items=[item_body(queue), item_body(queue, assignee="alice"), item_body(queue)]
    )
    assert [i.state for i in items] == ["OFFERED", "ASSIGNED", "OFFERED"]
    for it in items:
        assert it.version == 1
        assert OutboxEvent.objects.get(aggregate_id=str(it.pk)).event_type == "workitem.created.v1"
        assert AuditRecord.objects.get(work_item=it).action == "create"


@pytest.mark.parametrize("bad", [[], "not-a-list", None])
def test_bulk_create_needs_a_non_empty_list(svc, bad):
    with pytest.raises(ValidationFailed) as info:
        services.work_item_create_many(actor=svc, items=bad)
    assert info.value.errors[0]["field"] == "items"


def test_bulk_create_limit_comes_from_configuration(svc, queue, ws_config):
    ws_config({"performance": {"bulkCreateMax": 2}})
    with pytest.raises(ValidationFailed) as info:
        services.work_item_create_many(actor=svc, items=[item_body(queue) for _ in range(3)])
    assert "at most 2" in info.value.errors[0]["message"]
    assert WorkItem.objects.count() == 0


# --- create -------------------------------------------------------------------------------------


def test_create_offers_to_the_queue_or_assigns_the_named_user(svc, queue, alice):
    offered = services.work_item_create(actor=svc, data=item_body(queue))
    assert (offered.state, offered.assignee_id, offered.created_by_id) == ("OFFERED", None, svc.pk)
    assigned = services.work_item_create(actor=svc, data=item_body(queue, assignee="alice"))
    assert (assigned.state, assigned.assignee_id) == ("ASSIGNED", alice.pk)
    record = AuditRecord.objects.get(work_item=assigned)
    assert (record.action, record.from_state, record.to_state) == ("create", "", "ASSIGNED")
    assert record.data == {"version": 1, "route": "assign", "strategy": "direct", "assignee": "alice"}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"workflow_id": ""}, "workflow_id", ""),
        ({"priority": -1}, "priority", ""),
        ({"state": "COMPLETED"}, "state", "read-only field"),
        ({"version": 7}, "version", "read-only field"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"due_at": "tomorrow"}, "due_at", "ISO 8601"),
        ({"due_at": "2030-01-01T10:00:00"}, "due_at", "time zone"),
        ({"callback_url": "ftp://example.com/x"}, "callback_url", "http"),
        ({"assignee": "nobody"}, "assignee", "unknown user"),
        ({"candidate_groups": ["no-such-group"]}, "candidate_groups", "unknown groups"),
    ],
)
def test_create_validation_names_the_field(overrides, field, message, svc, queue):
    with pytest.raises(ValidationFailed) as info:
        services.work_item_create(actor=svc, data=item_body(queue, **overrides))
    errors = {e["field"]: e["message"] for e in info.value.errors}
    assert field in errors
    assert message in errors[field]
    assert WorkItem.objects.count() == 0


def test_create_requires_the_required_fields(svc):
    with pytest.raises(ValidationFailed) as info:
        services.work_item_create(actor=svc, data={})
    assert {e["field"] for e in info.value.errors} == {"workflow_id", "task_name"}
    # the queue is required too, unless the task type gives one (tests/workitems/test_task_types.py)
    with pytest.raises(ValidationFailed) as info:
        services.work_item_create(actor=svc, data={"workflow_id": "wf", "task_name": "t"})
    assert info.value.errors == [{"field": "queue", "message": "this field is required"}]


def test_create_in_an_unknown_or_inactive_queue(svc, queue):
    with pytest.raises(NotFound):
        services.work_item_create(actor=svc, data={**item_body(queue), "queue": "no-such-queue"})
    queue.active = False
    queue.save()
    with pytest.raises(ValidationFailed) as info:
        services.work_item_create(actor=svc, data=item_body(queue))
    assert info.value.errors[0]["field"] == "queue"


def test_workers_may_not_create(alice, queue):
    with pytest.raises(NotAllowed):
        services.work_item_create(actor=alice, data=item_body(queue))
    assert WorkItem.objects.count() == 0


def test_queue_sla_sets_the_due_date(svc, team_a):
    q = factories.queue("sla-queue", groups=[team_a], sla=dt.timedelta(hours=4))
    item = services.work_item_create(actor=svc, data=item_body(q))
    assert dt.timedelta(hours=3, minutes=59) < item.due_at - item.created_at <= dt.timedelta(hours=4)


# --- commands: visibility, roles, relation, versions --------------------------------------


def test_an_item_outside_the_actors_queues_does_not_exist_for_it(make_item, bob):
    item = make_item()
    before = observed(item.pk)
    with pytest.raises(NotFound):
        services.work_item_claim(item_id=item.pk, actor=bob)
    with pytest.raises(NotFound):
        services.work_item_claim(item_id=10**12, actor=bob)
    assert observed(item.pk) == before


def test_only_the_assignee_works_on_a_held_item(make_item, alice, carol, sam):
    item = make_item()
    services.work_item_claim(item_id=item.pk, actor=alice)
    before = observed(item.pk)
    for actor in (carol, sam):
        with pytest.raises(NotAllowed, match="only the assignee"):
            services.work_item_start(item_id=item.pk, actor=actor)
    # release and delegate: the assignee or a supervisor, not another worker
    with pytest.raises(NotAllowed):
        services.work_item_release(item_id=item.pk, actor=carol)
    with pytest.raises(NotAllowed):
        services.work_item_delegate(item_id=item.pk, actor=carol, user=carol)
    assert observed(item.pk) == before

    services.work_item_start(item_id=item.pk, actor=alice)
    before = observed(item.pk)
    for action in ("complete", "fail"):
        for actor in (carol, sam):
            with pytest.raises(NotAllowed, match="only the assignee"):
                services.COMMANDS[action](item_id=item.pk, actor=actor)
    assert observed(item.pk) == before
    # a supervisor hands it on; then the new assignee works on it
    item = services.work_item_delegate(item_id=item.pk, actor=sam, user=carol)
    assert (item.state, item.assignee_id) == ("ASSIGNED", carol.pk)
    item = services.work_item_release(item_id=item.pk, actor=sam)
    assert (item.state, item.assignee_id) == ("OFFERED", None)


def test_cancel_by_the_creator_or_a_supervisor_only(make_item, svc, sam, alice, team_a):
    other_client = factories.user("svc2", roles=["service"])
    item = make_item()
    with pytest.raises(NotAllowed):
        services.work_item_cancel(item_id=item.pk, actor=other_client)
    with pytest.raises(NotAllowed):
        services.work_item_cancel(item_id=item.pk, actor=alice)
    assert services.work_item_cancel(item_id=item.pk, actor=sam).state == "CANCELLED"
    assert services.work_item_cancel(item_id=make_item().pk, actor=svc).state == "CANCELLED"


def test_stale_expected_version_is_refused_and_changes_nothing(make_item, alice):
    item = make_item()
    item = services.work_item_claim(item_id=item.pk, actor=alice, expected_version=1)
    assert item.version == 2
    before = observed(item.pk)
    with pytest.raises(StaleVersion) as info:
        services.work_item_start(item_id=item.pk, actor=alice, expected_version=1)
    assert (info.value.expected, info.value.current) == (1, 2)
    assert observed(item.pk) == before
    assert services.work_item_start(item_id=item.pk, actor=alice, expected_version=2).version == 3


def test_the_system_cannot_claim(make_item):
    item = make_item()
    with pytest.raises(NotAllowed):
        services.work_item_claim(item_id=item.pk, actor=None)


def test_delegate_to_the_current_assignee_is_invalid(make_item, alice):
    item = make_item()
    services.work_item_claim(item_id=item.pk, actor=alice)
    before = observed(item.pk)
    with pytest.raises(ValidationFailed) as info:
        services.work_item_delegate(item_id=item.pk, actor=alice, user="alice")
    assert info.value.errors[0]["field"] == "user"
    with pytest.raises(ValidationFailed):
        services.work_item_delegate(item_id=item.pk, actor=alice, user="no-such-user")
    assert observed(item.pk) == before


def test_reason_must_be_a_short_string(make_item, sam):
    item = make_item()
    before = observed(item.pk)
    with pytest.raises(ValidationFailed) as info:
        services.work_item_cancel(item_id=item.pk, actor=sam, reason="x" * (services.MAX_REASON + 1))
    assert info.value.errors[0]["field"] == "reason"
    assert observed(item.pk) == before


def test_escalate_moves_an_unheld_item_to_the_escalation_queue(svc, sam, alice, team_a):
    senior = factories.queue("senior", groups=[team_a])
    q = factories.queue("first-line", groups=[team_a], escalation_queue=senior)
    offered = factories.item(actor=svc, queue=q)
    offered = services.work_item_escalate(item_id=offered.pk, actor=sam, reason="late")
    assert (offered.queue_id, offered.escalation_level, offered.state) == (senior.pk, 1, "OFFERED")
    record = AuditRecord.objects.filter(work_item=offered).order_by("-seq").first()
    assert record.data == {"version": 2, "reason": "late", "from_queue": "first-line", "to_queue": "senior"}
    assert OutboxEvent.objects.get(aggregate_id=str(offered.pk), sequence=2).payload["work_item"]["queue"] == "senior"

    held = factories.item(actor=svc, queue=q)
    services.work_item_claim(item_id=held.pk, actor=alice)
    held = services.work_item_escalate(item_id=held.pk, actor=None)
    assert (held.queue_id, held.escalation_level) == (q.pk, 1)  # a held item stays where it is


def test_each_command_writes_the_envelope(make_item, alice):
    item = make_item(correlation_id="corr-9")
    item = services.work_item_claim(item_id=item.pk, actor=alice)
    event = OutboxEvent.objects.get(aggregate_id=str(item.pk), sequence=item.version)
    envelope = event.envelope()
    assert envelope["event_type"] == "workitem.claimed.v1"
    assert envelope["producer"] == "workstream"
    assert envelope["correlation_id"] == "corr-9"
    assert envelope["sequence"] == 2
    assert envelope["payload"]["work_item"]["assignee"] == "alice"
    assert envelope["payload"]["work_item"]["version"] == 2
    transition = envelope["payload"]["transition"]
    assert (transition["from_state"], transition["to_state"], transition["actor"]) == ("OFFERED", "ASSIGNED", "alice")
    assert transition["assignee"] == "alice"
    assert event.published_at is None


def test_event_transition_names_the_command(make_item, alice):
    item = make_item(correlation_id="corr-9")
    item = services.work_item_claim(item_id=item.pk, actor=alice)
    event = OutboxEvent.objects.get(aggregate_id=str(item.pk), sequence=item.version)
    envelope = event.envelope()
    assert envelope["event_type"] == "workitem.claimed.v1"
    assert envelope["producer"] == "workstream"
    assert envelope["correlation_id"] == "corr-9"
    assert envelope["payload"]["work_item"]["assignee"] == "alice"
    assert envelope["payload"]["transition"] == {
        "action": "claim",
        "from_state": "OFFERED",
        "to_state": "ASSIGNED",
        "actor": "alice",
        "assignee": "alice",
    }
    assert event.published_at is None


# --- request context ------------------------------------------------------------------------


def test_request_context_lands_on_the_audit_record_and_the_outbox_row(make_item, alice):
    item = make_item()  # outside any context: the system channel, no request id
    created = AuditRecord.objects.get(work_item=item)
    assert (created.channel, created.request_id) == ("system", "")
    assert OutboxEvent.objects.get(aggregate_id=str(item.pk)).trace_id == ""

    with acting(channel="admin", request_id="r-1") as rid:
        assert rid == "r-1"
        services.work_item_claim(item_id=item.pk, actor=alice)
    record = AuditRecord.objects.filter(work_item=item).order_by("-seq").first()
    assert (record.action, record.channel, record.request_id) == ("claim", "admin", "r-1")
    assert OutboxEvent.objects.get(aggregate_id=str(item.pk), sequence=2).trace_id == "r-1"

    # the context ends with the block
    services.work_item_start(item_id=item.pk, actor=alice)
    record = AuditRecord.objects.filter(work_item=item).order_by("-seq").first()
    assert (record.channel, record.request_id) == ("system", "")
    assert audit_services.audit_verify(stream=f"workitem:{item.pk}").ok


def test_acting_refuses_an_unknown_channel():
    with pytest.raises(ValueError, match="unknown channel"), acting(channel="carrier-pigeon"):
        pass
