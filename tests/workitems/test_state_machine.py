"""Random command sequences against one work item (hypothesis stateful testing).

Each example creates an item through the service layer and fires random commands at
it as random actors (its assignee, a supervisor, another worker of the team, the
service client). After every step the invariants below must hold, whether the command
succeeded or was refused.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from audit.models import AuditRecord
from audit.services import audit_verify
from events.models import OutboxEvent
from tests import factories
from tests.factories import DEFAULT_TRANSITIONS, RESUME_STATE, observed, state_key
from workitems import policy, services
from workitems.errors import InvalidTransition, NotAllowed, WorkstreamError
from workitems.models import ACTIONS, TERMINAL_STATES, WorkItem

ACTOR_KINDS = ("assignee", "supervisor", "other_worker", "service")
# Every action that has a command (`reserve` has none: distribution applies it, at create here).
COMMAND_ACTIONS = [a for a in ACTIONS if a in services.COMMANDS]
SUB_STATUSES = {"initial": "drafting", "moves": {"drafting": ["review"], "review": ["drafting"]}}

MACHINE_SETTINGS = settings(
    max_examples=30,
    stateful_step_count=25,
    deadline=None,
    database=None,  # no example database written into the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _machine(*, svc, alice, carol, sam, queue, tally: Counter):
    users = {"alice": alice, "carol": carol}

    class WorkItemMachine(RuleBasedStateMachine):
        """One item, random commands, the service layer's promises as invariants."""

        @initialize(reserved=st.booleans())
        def create(self, reserved):
            """A new OFFERED item; named for alice, it is reserved for her (the queue has a timeout)."""
            tally["items"] += 1
            self.item = factories.item(actor=svc, queue=queue, **({"assignee": "alice"} if reserved else {}))
            assert (self.item.state, self.item.reserved_for_id) == ("OFFERED", alice.pk if reserved else None)
            self.terminal_state = None
            self.successes = 0
            self.last = observed(self.item.pk)  # refreshed by the invariant after every step

        def _load(self) -> WorkItem:
            return WorkItem.objects.select_related("assignee", "reserved_for", "queue__lifecycle").get(pk=self.item.pk)

        def _actor(self, kind: str, item: WorkItem):
            # "assignee" is whoever holds the item (or has it reserved), else alice, who would take it.
            holder = item.assignee or item.reserved_for or alice
            return {
                "assignee": holder,
                "supervisor": sam,
                "other_worker": carol if holder.pk == alice.pk else alice,
                "service": svc,
            }[kind]

        @rule(
            action=st.sampled_from(COMMAND_ACTIONS),
            who=st.sampled_from(ACTOR_KINDS),
            to_user=st.sampled_from(sorted(users)),
            versioned=st.booleans(),
        )
        def any_command(self, action, who, to_user, versioned):
            """Any command by any of the actors: mostly refusals."""
            self._fire(self._load(), action, who, to_user, versioned)

        @rule(data=st.data())
        def entitled_command(self, data):
            """A command the lifecycle allows now, by an actor whose role and relation allow it
            (a constraint may still refuse it). Keeps random runs from idling in refusals."""
            item = self._load()
            choices = [
                (action, who)
                for action in item.available_actions()
                if action in services.COMMANDS
                for who in ACTOR_KINDS
                if action in services.allowed_actions_for(item, self._actor(who, item))
            ]
            if choices:
                action, who = data.draw(st.sampled_from(choices))
                self._fire(item, action, who, data.draw(st.sampled_from(sorted(users))), data.draw(st.booleans()))

        def _fire(self, item: WorkItem, action: str, who: str, to_user: str, versioned: bool) -> None:
            before = self.last
            actor = self._actor(who, item)
            kwargs = {"item_id": item.pk, "actor": actor}
            if versioned:
                kwargs["expected_version"] = item.version
            if action in ("assign", "delegate"):
                kwargs["user"] = users[to_user]
            if action == "complete":
                kwargs["result"] = {"done": True}
            if action == "forward":
                kwargs["users"] = [to_user]
            if action in ("fail", "cancel", "suspend", "escalate", "reject", "skip"):
                kwargs["reason"] = f"{action} by {who}"
            if action == "set_sub_status":
                kwargs["sub_status"] = "review" if item.sub_status == "drafting" else "drafting"
            if action == "move":  # back and forth between the machine's two queues
                kwargs["queue"] = "machine-queue-2" if item.queue.name == "machine-queue" else "machine-queue"
            if action == "update":  # a new priority each time (the same values are refused)
                kwargs["changes"] = {"priority": (item.priority + 1) % 101}
            lifecycle_allows = action in item.available_actions()
            if ACTIONS[action].route:
                actor_allowed = action in services.allowed_actions_for(item, actor)
            else:  # PATCH: not an action by id, so not in allowed_actions; the same role rule
                actor_allowed = policy.role_allows(action, item, actor) and policy.relation_allows(action, item, actor)

            try:
                services.COMMANDS[action](**kwargs)
            except WorkstreamError as exc:
                tally["refused"] += 1
                if not lifecycle_allows:
                    assert isinstance(exc, InvalidTransition), exc
                elif not actor_allowed:
                    assert isinstance(exc, NotAllowed), exc
                assert observed(item.pk) == before, f"refused {action} by {who} changed the item"
                return

            self.successes += 1
            tally[action] += 1
            assert lifecycle_allows and actor_allowed, f"{action} by {who} should have been refused"
            after = observed(item.pk)
            assert after["version"] == before["version"] + 1
            assert after["audit"] == before["audit"] + 1
            assert after["outbox"] == before["outbox"] + 1
            target_state = DEFAULT_TRANSITIONS[action].get(state_key(before["row"]))
            if action == "set_sub_status":
                target_state = "IN_PROGRESS"  # the machine's queue names sub-statuses
            if target_state == RESUME_STATE:
                target_state = before["row"]["resume_state"]
            assert after["state"] == target_state, (action, state_key(before["row"]), after["state"])
            if action == "escalate":
                assert after["row"]["escalation_level"] == before["row"]["escalation_level"] + 1
            if after["state"] in TERMINAL_STATES:
                self.terminal_state = after["state"]

        @invariant()
        def item_audit_and_outbox_agree(self):
            snap = observed(self.item.pk)
            row, state, version = snap["row"], snap["state"], snap["version"]

            # terminal states stay terminal
            if self.terminal_state is not None:
                assert state == self.terminal_state

            # version rises by exactly one per successful command, not at all on a refused one
            assert version == 1 + self.successes

            # one audit record and one outbox event per change, numbered by version
            audit = list(
                AuditRecord.objects.filter(work_item_id=self.item.pk)
                .order_by("seq")
                .values_list("seq", "data__version")
            )
            assert audit == [(v, v) for v in range(1, version + 1)]
            sequences = list(
                OutboxEvent.objects.filter(aggregate_type="workitem", aggregate_id=str(self.item.pk))
                .order_by("id")
                .values_list("sequence", flat=True)
            )
            assert sequences == list(range(1, version + 1)), "outbox sequence must equal version, contiguous"

            # among open states the assignee is set exactly where the item is held;
            # terminal states keep the last assignee (a deliberate decision): no constraint
            assignee = row["assignee_id"]
            if state in ("ASSIGNED", "IN_PROGRESS"):
                assert assignee is not None
            elif state in ("CREATED", "OFFERED"):
                assert assignee is None
            elif state == "SUSPENDED":
                held = row["resume_state"] in ("ASSIGNED", "IN_PROGRESS")
                assert (assignee is not None) == held, row

            # a reservation holds only an OFFERED item (or one suspended while OFFERED)
            if row["reserved_for_id"] is not None:
                assert state == "OFFERED" or (state == "SUSPENDED" and row["resume_state"] == "OFFERED"), row
                assert assignee is None

            # the item's audit chain verifies
            report = audit_verify(stream=f"workitem:{self.item.pk}")
            assert report.ok, report
            assert report.records_checked == version
            self.last = snap

    return WorkItemMachine


@pytest.mark.slow
def test_random_command_sequences_keep_the_invariants(svc, alice, carol, sam, team_a):
    # The default lifecycle plus named sub-statuses, so that set_sub_status can succeed too
    # (the default lifecycle's refusals are covered pair by pair in test_lifecycle.py).
    lc = factories.lifecycle(name="machine", sub_statuses=SUB_STATUSES)
    queue = factories.queue("machine-queue", groups=[team_a], lifecycle=lc, reservation_timeout=dt.timedelta(hours=1))
    factories.queue("machine-queue-2", groups=[team_a], lifecycle=lc, reservation_timeout=dt.timedelta(hours=1))
    tally: Counter = Counter()
    machine = _machine(svc=svc, alice=alice, carol=carol, sam=sam, queue=queue, tally=tally)
    run_state_machine_as_test(machine, settings=MACHINE_SETTINGS)
    # the run exercised the service layer: items were made, changed, refused, closed
    assert WorkItem.objects.filter(queue__name__startswith="machine-queue").count() >= 30
    assert tally["refused"] > 0
    assert sum(n for action, n in tally.items() if action not in ("refused", "items")) > 30, tally
    assert WorkItem.objects.filter(queue__name__startswith="machine-queue", state__in=TERMINAL_STATES).exists()
