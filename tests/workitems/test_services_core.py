"""The command layer's single sources: the action table and the strategy registry are the only
lists of their names; claim-next obeys a lifecycle's action_roles like claim does."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from config import wsconfig
from distribution import strategies
from events import inbound
from tests import factories
from workitems import policy, schemas, services
from workitems.api import views
from workitems.api.queue_views import QUEUE_STRATEGY_CHOICES
from workitems.api.serializers import ITEM_STRATEGY_CHOICES
from workitems.errors import NotAllowed
from workitems.models import ACTIONS, CREATE, EVENT_NAMES, Queue, WorkItem


def test_every_action_of_the_table_is_a_transition_and_every_transition_is_in_the_table():
    transitions = {t.name for t in WorkItem._meta.get_field("state").get_all_transitions(WorkItem)}
    assert transitions == set(ACTIONS)


def test_routes_commands_roles_and_inbound_derive_from_the_action_table():
    routed = {name for name, a in ACTIONS.items() if a.route}
    assert {views.ROUTED_ACTIONS[r] for r in views.API_ACTIONS} == routed
    assert set(services.COMMANDS) == {name for name, a in ACTIONS.items() if not a.system}
    assert set(policy.DEFAULT_ACTION_ROLES) == {CREATE, *ACTIONS}
    assert set(inbound.COMMANDS) == {CREATE, *routed, "update"}  # every action a caller fires, PATCH's too
    assert set(EVENT_NAMES) == {CREATE, *ACTIONS}
    for route, body in views.ACTION_BODIES.items():
        assert set(ACTIONS[views.ROUTED_ACTIONS[route]].args) <= set(body().fields)


def test_every_consumer_of_strategy_names_reads_the_registry():
    names = list(strategies.STRATEGIES)
    assert [n for n, _ in Queue._meta.get_field("strategy").choices] == [
        n for n in names if strategies.STRATEGIES[n].queue_default
    ]
    assert [n for n, _ in WorkItem._meta.get_field("strategy").choices] == names
    assert list(wsconfig.STRATEGIES) == names
    assert schemas.CREATE_SCHEMA["properties"]["strategy"]["enum"] == names
    assert [n for n, _ in ITEM_STRATEGY_CHOICES] == names
    assert [n for n, _ in QUEUE_STRATEGY_CHOICES] == [n for n in names if n != "direct"]


@pytest.mark.django_db
def test_a_new_strategy_is_one_class_and_needs_no_migration(monkeypatch):
    monkeypatch.setattr(strategies, "STRATEGIES", dict(strategies.STRATEGIES))

    @strategies.register
    class FirstCome(strategies.Strategy):
        name = "first_come"

        def choose(self, candidates, item, last_user_id=None):
            return candidates[0] if candidates else None

    assert "first_come" in dict(Queue._meta.get_field("strategy").choices)
    out = io.StringIO()
    call_command("makemigrations", "workitems", check=True, dry_run=True, stdout=out)  # exits 1 on a change
    assert "No changes detected" in out.getvalue()


@pytest.fixture
def supervised_queue(team_a):
    """A queue whose lifecycle lets only supervisors claim."""
    lc = factories.lifecycle("supervisors-claim", action_roles={"claim": ["supervisor"]})
    return factories.queue("supervised", groups=[team_a], lifecycle=lc)


def test_claim_next_passes_over_queues_whose_lifecycle_refuses_the_callers_roles(
    svc, alice, team_a, queue, supervised_queue
):
    guarded = factories.item(actor=svc, queue=supervised_queue, priority=90)
    open_one = factories.item(actor=svc, queue=queue, priority=10)
    with pytest.raises(NotAllowed):
        services.work_item_claim(item_id=guarded.pk, actor=alice)
    assert services.work_item_claim_next(actor=alice).pk == open_one.pk
    assert services.work_item_claim_next(actor=alice) is None  # the guarded item is never taken
    sup = factories.user("sup-member", roles=["supervisor"], groups=[team_a])
    assert services.work_item_claim_next(actor=sup).pk == guarded.pk


def test_claim_next_lets_a_role_that_only_the_lifecycle_grants_claim(svc, team_a):
    """A service account may not claim by default; a lifecycle that grants it lets claim-next
    hand it work (before the fix claim-next refused it up front, from the defaults)."""
    lc = factories.lifecycle("bots-claim", action_roles={"claim": ["service", "worker"]})
    q = factories.queue("bot-work", groups=[team_a], lifecycle=lc)
    item = factories.item(actor=svc, queue=q)
    bot = factories.user("robot", roles=["service"], groups=[team_a])
    assert services.work_item_claim_next(actor=bot).pk == item.pk
    other = factories.user("robot2", roles=["service"], groups=[team_a])
    factories.item(actor=svc, queue=factories.queue("plain", groups=[team_a]))
    with pytest.raises(NotAllowed):  # where only the defaults apply, a service account still may not
        services.work_item_claim_next(actor=other, queue="plain")
