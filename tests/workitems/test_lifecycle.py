"""The lifecycle: every (state, action) pair of the default table, and lifecycle definitions.

The matrix is generated from `State` × `ACTIONS`; the expected outcome of each pair
comes from `factories.DEFAULT_TRANSITIONS` (the table of docs/api.md "Actions" as data).
"""

from __future__ import annotations

import datetime as dt
import itertools
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from audit.models import AuditRecord
from events.models import OutboxEvent
from tests import factories
from tests.factories import DEFAULT_TRANSITIONS, RESERVED, RESUME_STATE, item_in, observed, state_key
from workitems import services
from workitems.errors import AlreadyClaimed, InvalidTransition, NotAllowed, ValidationFailed
from workitems.models import ACTIONS, TERMINAL_STATES, Queue, State, WorkItem

ALL_STATES = [s.value for s in State]
# The states of the matrix: every State, plus an OFFERED item reserved for one user.
STATE_KEYS = [*ALL_STATES, RESERVED]


@pytest.fixture
def cast(svc, alice, carol, sam, queue):
    """The personas the lifecycle tests act as, and the queue they work in (pull; an item
    created for a named user is reserved for them, for an hour, rather than assigned)."""
    queue.reservation_timeout = dt.timedelta(hours=1)
    queue.save(update_fields=["reservation_timeout"])
    return SimpleNamespace(svc=svc, alice=alice, carol=carol, sam=sam, queue=queue)


def drive(state: str, cast, *, queue=None, suspended_from: str = "IN_PROGRESS") -> WorkItem:
    return item_in(
        state,
        queue=queue or cast.queue,
        creator=cast.svc,
        worker=cast.alice,
        supervisor=cast.sam,
        suspended_from=suspended_from,
    )


def command_for(action: str, item: WorkItem, cast):
    """An actor entitled to `action` by the "who" column (docs/api.md "Actions"), and the command's arguments.

    The assignee's actions go to the assignee (alice, the worker who claims, when nobody
    holds the item); supervisor actions to sam; cancel to the creating client.
    """
    assignee = item.assignee or item.reserved_for or cast.alice
    return {
        "offer": (None, {}),  # the system (distribution)
        "assign": (cast.sam, {"user": cast.alice}),
        "claim": (cast.alice, {}),
        "release": (assignee, {}),
        "start": (assignee, {}),
        "complete": (assignee, {"result": {"approved": True}}),
        "fail": (assignee, {"reason": "cannot be done"}),
        "suspend": (cast.sam, {"reason": "waiting for the customer"}),
        "resume": (cast.sam, {}),
        "delegate": (assignee, {"user": cast.carol}),
        "escalate": (cast.sam, {"reason": "late"}),
        "cancel": (cast.svc, {"reason": "withdrawn"}),
        "skip": (cast.svc, {"reason": "no longer needed"}),  # an item not marked optional: never
        "forward": (assignee if item.assignee_id else cast.sam, {"users": [cast.carol.username]}),
        "set_sub_status": (assignee, {"sub_status": "review"}),
        "accept": (assignee, {}),
        "reject": (assignee, {"reason": "too busy"}),
        "move": (cast.sam, {"queue": Queue.objects.get_or_create(name="elsewhere")[0]}),
        "update": (cast.sam, {"changes": {"priority": 77 if item.priority != 77 else 78}}),
    }[action]


def test_the_design_table_names_every_action_and_only_known_states():
    assert set(DEFAULT_TRANSITIONS) == set(ACTIONS)
    for moves in DEFAULT_TRANSITIONS.values():
        assert set(moves) <= set(STATE_KEYS)
        assert set(moves.values()) <= set(ALL_STATES) | {RESUME_STATE}
    # terminal states have no way out
    assert not any(set(moves) & set(TERMINAL_STATES) for moves in DEFAULT_TRANSITIONS.values())


@pytest.mark.parametrize("state", STATE_KEYS)
def test_available_actions_are_the_design_tables(state, cast):
    item = drive(state, cast)
    assert state_key(item) == state
    expected = sorted(a for a, moves in DEFAULT_TRANSITIONS.items() if state in moves)
    assert item.available_actions() == expected


@pytest.mark.parametrize(("state", "action"), list(itertools.product(STATE_KEYS, ACTIONS)))
def test_every_state_action_pair(state, action, cast):
    item = drive(state, cast)
    assert state_key(item) == state
    target = DEFAULT_TRANSITIONS[action].get(state)
    if action not in services.COMMANDS:
        # The system's own steps have no command: distribution applies `reserve` (see the
        # reservation tests), the SLA scan its state changes (tests/workitems/test_sla.py).
        assert ACTIONS[action].system
        assert (action in item.available_actions()) == (target is not None)
        return
    actor, kwargs = command_for(action, item, cast)
    before = observed(item.pk)

    if target is None:
        with pytest.raises(InvalidTransition) as info:
            services.COMMANDS[action](item_id=item.pk, actor=actor, **kwargs)
        exc = info.value
        assert (exc.action, exc.state) == (action, item.state)
        assert action not in exc.allowed_actions
        fresh = WorkItem.objects.get(pk=item.pk)
        assert exc.allowed_actions == services.allowed_actions_for(fresh, actor)
        assert set(exc.allowed_actions) <= set(fresh.available_actions())
        if state in TERMINAL_STATES:
            assert exc.allowed_actions == []
        assert observed(item.pk) == before, "a refused command changed something"
        return

    result = services.COMMANDS[action](item_id=item.pk, actor=actor, **kwargs)
    after = observed(item.pk)
    row, was = after["row"], before["row"]
    expected_state = was["resume_state"] if target == RESUME_STATE else target
    assert result.state == row["state"] == expected_state
    assert row["version"] == result.version == was["version"] + 1
    assert after["audit"] == before["audit"] + 1
    assert after["outbox"] == before["outbox"] + 1

    record = AuditRecord.objects.filter(work_item_id=item.pk).order_by("-seq").first()
    assert (record.action, record.from_state, record.to_state) == (action, item.state, expected_state)
    assert record.actor_id == (actor.pk if actor else None)
    assert record.data["version"] == row["version"]
    event = OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("-sequence").first()
    # events are numbered per item, without gaps; an item made by the services has had one
    # event per version (the CREATED row was inserted without its "created" event)
    assert event.sequence == row["event_seq"] == after["outbox"]
    if state != "CREATED":
        assert event.sequence == row["version"]
    assert event.event_type == f"workitem.{services.EVENT_NAMES[action]}.v1"
    assert event.payload["work_item"]["state"] == expected_state
    assert event.payload["transition"]["action"] == action
    assert {k: v for k, v in event.payload["transition"].items() if k != "action"} == {
        "from_state": item.state,
        "to_state": expected_state,
        "actor": getattr(actor, "username", None),
        **{k: v for k, v in record.data.items() if k != "version"},
    }

    # what each action does beyond the state
    if action == "escalate":
        assert row["escalation_level"] == was["escalation_level"] + 1
    else:
        assert row["escalation_level"] == was["escalation_level"]
    if action == "suspend":
        assert row["resume_state"] == item.state
    if action == "resume":
        assert row["resume_state"] == ""
        assert row["assignee_id"] == was["assignee_id"]
    if action in ("assign", "claim", "accept"):
        assert row["assignee_id"] == cast.alice.pk and row["assigned_at"] is not None
        assert row["reserved_for_id"] is None, "taking the item ends its reservation"
    if action == "reject":
        assert row["reserved_for_id"] is None and row["declined_by"] == [cast.alice.pk]
    if action == "release":
        assert row["assignee_id"] is None and row["assigned_at"] is None
    if action == "delegate":
        assert row["assignee_id"] == cast.carol.pk and row["started_at"] is None
    if expected_state in TERMINAL_STATES:
        assert row["closed_at"] is not None
        assert row["assignee_id"] == was["assignee_id"], "a closed item keeps its last assignee"
    if action == "complete":
        assert row["result"] == {"approved": True}


@pytest.mark.parametrize("suspended_from", ["OFFERED", "ASSIGNED", "IN_PROGRESS"])
def test_resume_returns_to_the_state_it_left(suspended_from, cast):
    item = drive("SUSPENDED", cast, suspended_from=suspended_from)
    assert item.state == "SUSPENDED" and item.resume_state == suspended_from
    held_by = None if suspended_from == "OFFERED" else cast.alice.pk
    assert item.assignee_id == held_by

    item = services.work_item_resume(item_id=item.pk, actor=cast.sam)
    assert item.state == suspended_from and item.resume_state == ""
    assert item.assignee_id == held_by
    # and the item carries on from there
    nxt = {"OFFERED": ("claim", cast.alice), "ASSIGNED": ("start", cast.alice), "IN_PROGRESS": ("fail", cast.alice)}
    action, actor = nxt[suspended_from]
    item = services.COMMANDS[action](item_id=item.pk, actor=actor)
    assert item.state == DEFAULT_TRANSITIONS[action][suspended_from]


def test_escalate_twice_keeps_state_and_counts_levels(cast):
    item = drive("ASSIGNED", cast)
    for level in (1, 2):
        item = services.work_item_escalate(item_id=item.pk, actor=cast.sam, reason="late")
        assert (item.state, item.escalation_level) == ("ASSIGNED", level)
    assert item.version == 4


# --- lifecycle definitions ---------------------------------------------------------------

SUB_STATUSES = {
    "initial": "drafting",
    "moves": {"drafting": ["review"], "review": ["drafting", "approved"], "approved": []},
}
_lc_names = itertools.count(1)


@pytest.fixture
def lc_queue(team_a):
    """Make a queue of team A with a lifecycle definition built from `fields`."""

    def make(**fields):
        lc = factories.lifecycle(name=f"lc-{next(_lc_names)}", **fields)
        return factories.queue(f"q-{lc.name}", groups=[team_a], lifecycle=lc)

    return make


def test_start_required_by_default_refuses_complete_from_assigned(cast, lc_queue):
    item = drive("ASSIGNED", cast, queue=lc_queue(start_step="required"))
    before = observed(item.pk)
    with pytest.raises(InvalidTransition) as info:
        services.work_item_complete(item_id=item.pk, actor=cast.alice, result={})
    assert "start" in info.value.allowed_actions and "complete" not in info.value.allowed_actions
    assert observed(item.pk) == before


def test_start_optional_allows_complete_from_assigned_and_from_in_progress(cast, lc_queue):
    q = lc_queue(start_step="optional")
    item = drive("ASSIGNED", cast, queue=q)
    assert {"start", "complete"} <= set(services.allowed_actions_for(item, cast.alice))
    item = services.work_item_complete(item_id=item.pk, actor=cast.alice, result={"ok": 1})
    assert (item.state, item.version, item.started_at) == ("COMPLETED", 3, None)

    other = drive("IN_PROGRESS", cast, queue=q)
    other = services.work_item_complete(item_id=other.pk, actor=cast.alice, result={})
    assert other.state == "COMPLETED"


def test_start_disabled_removes_start_and_completes_from_assigned(cast, lc_queue):
    item = drive("ASSIGNED", cast, queue=lc_queue(start_step="disabled"))
    before = observed(item.pk)
    with pytest.raises(InvalidTransition) as info:
        services.work_item_start(item_id=item.pk, actor=cast.alice)
    assert "start" not in info.value.allowed_actions and "complete" in info.value.allowed_actions
    assert observed(item.pk) == before
    item = services.work_item_complete(item_id=item.pk, actor=cast.alice, result={})
    assert item.state == "COMPLETED"
    assert AuditRecord.objects.filter(work_item=item).values_list("action", flat=True)[::1] == [
        "create",
        "claim",
        "complete",
    ]


@pytest.mark.parametrize(
    ("flag", "action", "state"),
    [
        ("allow_suspend", "suspend", "OFFERED"),
        ("allow_suspend", "suspend", "ASSIGNED"),
        ("allow_suspend", "suspend", "IN_PROGRESS"),
        ("allow_release", "release", "ASSIGNED"),
        ("allow_delegate", "delegate", "ASSIGNED"),
        ("allow_delegate", "delegate", "IN_PROGRESS"),
    ],
)
def test_optional_steps_switched_off(flag, action, state, cast, lc_queue):
    item = drive(state, cast, queue=lc_queue(**{flag: False}))
    actor, kwargs = command_for(action, item, cast)
    assert action not in item.available_actions()
    before = observed(item.pk)
    with pytest.raises(InvalidTransition) as info:
        services.COMMANDS[action](item_id=item.pk, actor=actor, **kwargs)
    assert action not in info.value.allowed_actions
    assert observed(item.pk) == before

    # the same step on a queue whose lifecycle keeps it on works (the refusal is the flag's)
    control = drive(state, cast, queue=lc_queue(**{flag: True}))
    actor, kwargs = command_for(action, control, cast)
    services.COMMANDS[action](item_id=control.pk, actor=actor, **kwargs)


RESULT_SCHEMA = {
    "type": "object",
    "required": ["approved"],
    "properties": {
        "approved": {"type": "boolean"},
        "score": {"type": "integer", "minimum": 0},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("result", "fields"),
    [
        ({"approved": "yes", "score": -1}, {"result.approved", "result.score"}),
        ({"approved": True, "notes": ["fine", 3]}, {"result.notes[1]"}),
        ({"score": 2}, {"result"}),  # the missing required key is reported on the object
        ({"approved": True, "extra": 1}, {"result"}),
        (["approved"], {"result"}),  # not an object at all
    ],
)
def test_result_schema_rejects_bad_results_and_writes_nothing(result, fields, cast, lc_queue):
    item = drive("IN_PROGRESS", cast, queue=lc_queue(result_schema=RESULT_SCHEMA))
    before = observed(item.pk)
    with pytest.raises(ValidationFailed) as info:
        services.work_item_complete(item_id=item.pk, actor=cast.alice, result=result)
    assert {e["field"] for e in info.value.errors} == fields
    assert all(e["message"] for e in info.value.errors)
    assert observed(item.pk) == before


def test_result_schema_accepts_a_good_result(cast, lc_queue):
    item = drive("IN_PROGRESS", cast, queue=lc_queue(result_schema=RESULT_SCHEMA))
    result = {"approved": False, "score": 7, "notes": ["missing signature"]}
    item = services.work_item_complete(item_id=item.pk, actor=cast.alice, result=result)
    assert item.state == "COMPLETED"
    assert WorkItem.objects.get(pk=item.pk).result == result
    event = OutboxEvent.objects.get(aggregate_id=str(item.pk), sequence=item.version)
    assert event.payload["work_item"]["result"] == result


@pytest.mark.parametrize("state", ALL_STATES)
def test_set_sub_status_only_in_progress_and_only_with_sub_statuses(state, cast, lc_queue):
    item = drive(state, cast, queue=lc_queue(sub_statuses=SUB_STATUSES))
    before = observed(item.pk)
    if state != "IN_PROGRESS":
        with pytest.raises(InvalidTransition):
            services.work_item_set_sub_status(item_id=item.pk, actor=cast.alice, sub_status="review")
        assert observed(item.pk) == before
        return
    assert item.sub_status == "drafting"  # start put the item in the initial sub-status
    item = services.work_item_set_sub_status(item_id=item.pk, actor=cast.alice, sub_status="review")
    assert (item.state, item.sub_status, item.version) == ("IN_PROGRESS", "review", before["version"] + 1)
    record = AuditRecord.objects.filter(work_item=item).order_by("-seq").first()
    assert (record.action, record.data["sub_status"]) == ("set_sub_status", "review")
    assert OutboxEvent.objects.filter(aggregate_id=str(item.pk), event_type="workitem.sub_status_changed.v1").exists()


def test_sub_status_moves_are_enforced(cast, lc_queue):
    item = drive("IN_PROGRESS", cast, queue=lc_queue(sub_statuses=SUB_STATUSES))
    before = observed(item.pk)
    for bad in ("approved", "unknown", "drafting"):  # not a move from "drafting" (nor to itself)
        with pytest.raises(ValidationFailed) as info:
            services.work_item_set_sub_status(item_id=item.pk, actor=cast.alice, sub_status=bad)
        assert info.value.errors[0]["field"] == "sub_status"
        assert "review" in info.value.errors[0]["message"]  # it names the allowed moves
    assert observed(item.pk) == before

    for name in ("review", "drafting", "review", "approved"):
        item = services.work_item_set_sub_status(item_id=item.pk, actor=cast.alice, sub_status=name)
        assert item.sub_status == name
    with pytest.raises(ValidationFailed):  # "approved" has no moves out
        services.work_item_set_sub_status(item_id=item.pk, actor=cast.alice, sub_status="review")
    # only the assignee moves it
    with pytest.raises(NotAllowed):
        services.work_item_set_sub_status(item_id=item.pk, actor=cast.carol, sub_status="review")
    item = services.work_item_complete(item_id=item.pk, actor=cast.alice, result={})
    assert item.sub_status == ""


def test_delegate_clears_the_sub_status(cast, lc_queue):
    item = drive("IN_PROGRESS", cast, queue=lc_queue(sub_statuses=SUB_STATUSES))
    item = services.work_item_delegate(item_id=item.pk, actor=cast.alice, user=cast.carol)
    assert (item.state, item.sub_status, item.assignee_id) == ("ASSIGNED", "", cast.carol.pk)


def test_default_lifecycle_has_no_sub_statuses(cast):
    item = drive("IN_PROGRESS", cast)
    assert item.sub_status == ""
    with pytest.raises(InvalidTransition):
        services.work_item_set_sub_status(item_id=item.pk, actor=cast.alice, sub_status="review")


def test_action_roles_override_replaces_the_default_roles(cast, lc_queue, ada):
    q = lc_queue(action_roles={"cancel": ["admin"], "claim": ["supervisor"], "suspend": ["worker"]})
    item = drive("OFFERED", cast, queue=q)
    before = observed(item.pk)
    # cancel: by default the creating client or a supervisor; now admins only
    for actor in (cast.svc, cast.sam):
        with pytest.raises(NotAllowed):
            services.work_item_cancel(item_id=item.pk, actor=actor)
        assert "cancel" not in services.allowed_actions_for(item, actor)
    # claim: workers no longer
    with pytest.raises(NotAllowed):
        services.work_item_claim(item_id=item.pk, actor=cast.alice)
    assert observed(item.pk) == before
    # suspend: now a worker's action (and no longer a supervisor's)
    with pytest.raises(NotAllowed):
        services.work_item_suspend(item_id=item.pk, actor=cast.sam)
    item = services.work_item_suspend(item_id=item.pk, actor=cast.alice)
    assert item.state == "SUSPENDED"
    # the system is always allowed; the admin may cancel
    item = services.work_item_escalate(item_id=item.pk, actor=None)
    item = services.work_item_cancel(item_id=item.pk, actor=ada, reason="admin")
    assert item.state == "CANCELLED"


def test_custom_lifecycles_switched_off_fall_back_to_the_default(cast, lc_queue, ws_config):
    q = lc_queue(start_step="disabled", allow_suspend=False)
    item = drive("ASSIGNED", cast, queue=q)
    assert "start" not in item.available_actions()
    ws_config({"features": {"lifecycle": {"custom": False}}})
    item = WorkItem.objects.get(pk=item.pk)
    assert item.available_actions() == sorted(a for a, m in DEFAULT_TRANSITIONS.items() if "ASSIGNED" in m)
    item = services.work_item_start(item_id=item.pk, actor=cast.alice)
    assert item.state == "IN_PROGRESS"


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"result_schema": {"type": "no-such-type"}}, "result_schema"),
        ({"sub_statuses": {"initial": "a", "moves": {"b": []}}}, "sub_statuses"),
        ({"sub_statuses": {"moves": {"a": "b"}}}, "sub_statuses"),
        ({"sub_statuses": {"first": "a"}}, "sub_statuses"),
        ({"action_roles": {"teleport": ["admin"]}}, "action_roles"),
        ({"action_roles": {"cancel": ["wizard"]}}, "action_roles"),
        ({"action_roles": ["cancel"]}, "action_roles"),
    ],
)
def test_lifecycle_definition_is_validated(fields, key, db):
    with pytest.raises(ValidationError) as info:
        factories.lifecycle(name="bad", **fields)
    assert key in info.value.message_dict


# --- reservations (push with acceptance) -------------------------------------------------------


def test_a_reserved_item_is_for_its_reservee_only(cast):
    item = drive(RESERVED, cast)
    assert item.reserved_until is not None and item.assignee_id is None
    before = observed(item.pk)
    with pytest.raises(AlreadyClaimed):
        services.work_item_claim(item_id=item.pk, actor=cast.carol)
    for command in (services.work_item_accept, services.work_item_reject):
        with pytest.raises(NotAllowed, match="reserved for"):
            command(item_id=item.pk, actor=cast.carol)
    assert observed(item.pk) == before
    item = services.work_item_accept(item_id=item.pk, actor=cast.alice)
    assert (item.state, item.assignee_id, item.reserved_for_id, item.reserved_until) == (
        "ASSIGNED",
        cast.alice.pk,
        None,
        None,
    )


def test_rejecting_a_reservation_offers_the_item_to_everyone_else(cast):
    item = drive(RESERVED, cast)
    item = services.work_item_reject(item_id=item.pk, actor=cast.alice, reason="on leave")
    assert (item.state, item.reserved_for_id, item.declined_by) == ("OFFERED", None, [cast.alice.pk])
    assert "accept" not in item.available_actions() and "reject" not in item.available_actions()
    item = services.work_item_claim(item_id=item.pk, actor=cast.carol)
    assert item.assignee_id == cast.carol.pk
    assert list(AuditRecord.objects.filter(work_item=item).order_by("seq").values_list("action", flat=True)) == [
        "create",
        "reject",
        "claim",
    ]


def test_allowed_actions_lists_only_actions_a_caller_can_perform(cast):
    item = drive("OFFERED", cast)
    assert set(services.allowed_actions_for(item, cast.sam)) <= set(services.COMMANDS)
