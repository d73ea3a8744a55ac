"""Retain familiar (WRP 7): a queue with the `retain_familiar` strategy sends an item of a run to
the user who completed that run's previous item, when they are eligible; else the least loaded."""

from __future__ import annotations

from tests import factories
from workitems import services
from workitems.models import State


def _done_by(svc, queue, user, run_id):
    item = factories.item(actor=svc, queue=queue, workflow_id="claims", run_id=run_id, assignee=user.username)
    item = services.work_item_start(item_id=item.pk, actor=user)
    return services.work_item_complete(item_id=item.pk, actor=user, result={})


def test_the_next_item_of_a_run_goes_to_who_did_the_last_one(svc, alice, carol, team_a):
    q = factories.queue("familiar", groups=[team_a], strategy="retain_familiar")
    _done_by(svc, q, carol, "run-7")
    # carol is now busier than alice, so least loaded would pick alice
    factories.item(actor=svc, queue=q, run_id="other", assignee="carol")
    nxt = factories.item(actor=svc, queue=q, workflow_id="claims", run_id="run-7")
    assert (nxt.state, nxt.assignee_id) == (State.ASSIGNED, carol.pk)
    fresh = factories.item(actor=svc, queue=q, run_id="run-new")  # no history: least loaded
    assert fresh.assignee_id == alice.pk


def test_a_familiar_user_who_is_not_eligible_is_passed_over(svc, alice, carol, team_a):
    q = factories.queue("familiar-x", groups=[team_a], strategy="retain_familiar")
    _done_by(svc, q, carol, "run-8")
    nxt = factories.item(actor=svc, queue=q, workflow_id="claims", run_id="run-8", excluded_users=["carol"])
    assert nxt.assignee_id == alice.pk
