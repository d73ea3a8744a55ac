"""Absence through the directory commands as users drive them: a scheduled return restores
exactly what the explicit return restores, items suspended for the absence resume, and each
hand-over is its own savepoint."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import DatabaseError
from django.utils import timezone

from audit.models import AuditRecord
from directory import services as directory
from directory.models import Profile
from tests import factories
from workitems import services
from workitems.models import State, WorkItem
from workitems.services import absence


def _held(svc, queue, owner, n_assigned=2, n_started=1):
    items = [factories.item(actor=svc, queue=queue, assignee=owner.username) for _ in range(n_assigned + n_started)]
    for it in items[n_assigned:]:
        services.work_item_start(item_id=it.pk, actor=owner)
    return [it.pk for it in items]


def _outcome(item_ids):
    """(state, assignee, return_to) and the item audit actions since the absence, per item."""
    rows = WorkItem.objects.filter(pk__in=item_ids).order_by("pk")
    return [
        (
            r.state,
            r.assignee.username,
            r.return_to_id,
            [a for a in AuditRecord.objects.filter(work_item=r).order_by("seq").values_list("action", flat=True)],
        )
        for r in rows
    ]


def _profile(user):
    p = Profile.objects.get(user=user)
    return (p.out_of_office_from, p.out_of_office_until, p.delegate_id, p.out_of_office_handled_from)


def test_a_scheduled_return_restores_exactly_what_the_explicit_return_restores(svc, queue, team_a):
    explicit, scheduled = (factories.user(n, roles=["worker"], groups=[team_a]) for n in ("away-x", "away-s"))
    deputy = factories.user("deputy", roles=["worker"], groups=[team_a])
    mine = {u: _held(svc, queue, u) for u in (explicit, scheduled)}
    until = timezone.now() + timedelta(days=1)
    for u in (explicit, scheduled):
        directory.availability_set(actor=u, user=u, out_of_office_until=until, delegate=deputy)
    # Two items with the delegate, the started one (delegated afresh) too.
    assert all(s == State.ASSIGNED and a == "deputy" for s, a, _, _ in _outcome(mine[scheduled]))
    directory.availability_clear(actor=explicit, user=explicit)
    with time_machine.travel(until + timedelta(minutes=1), tick=False):
        assert directory.availability_sweep() == 1
        assert directory.availability_sweep() == 0  # once
    assert _outcome(mine[scheduled]) == [
        (state, "away-s", rt, actions) for state, _, rt, actions in _outcome(mine[explicit])
    ]
    assert all(s == State.ASSIGNED and rt is None for s, _, rt, _ in _outcome(mine[scheduled]))
    assert _profile(scheduled) == _profile(explicit) == (None, None, None, None)
    back = AuditRecord.objects.filter(stream=f"user:{scheduled.pk}", action="user.available").get()
    assert back.actor_id is None


def test_items_suspended_for_an_absence_resume_at_the_scheduled_return(svc, queue, alice):
    started = _held(svc, queue, alice, n_assigned=0, n_started=1)[0]
    until = timezone.now() + timedelta(hours=2)
    directory.availability_set(actor=alice, user=alice, out_of_office_until=until)  # no delegate
    item = WorkItem.objects.get(pk=started)
    assert item.state == State.SUSPENDED and item.assignee == alice
    with time_machine.travel(until + timedelta(seconds=1), tick=False):
        directory.availability_sweep()
    item.refresh_from_db()
    assert item.state == State.IN_PROGRESS and item.assignee == alice and item.return_to is None


def test_one_failing_hand_over_does_not_undo_the_others(svc, queue, alice, carol, monkeypatch):
    ids = _held(svc, queue, alice, n_assigned=3, n_started=0)
    real = absence.work_item_hand_over_for_absence

    def fails_for_the_second(*, item_id, user, reason):
        moved = real(item_id=item_id, user=user, reason=reason)  # the change is made, then the step fails
        if item_id == ids[1]:
            raise DatabaseError("injected failure after the change")
        return moved

    monkeypatch.setattr(absence, "work_item_hand_over_for_absence", fails_for_the_second)
    directory.availability_set(actor=alice, user=alice, delegate=carol)
    states = {r.pk: (r.assignee.username, r.version) for r in WorkItem.objects.filter(pk__in=ids)}
    assert states[ids[0]][0] == "carol" and states[ids[2]][0] == "carol"
    assert states[ids[1]] == ("alice", 1)  # its savepoint rolled back; it stays with alice, untouched
    assert not AuditRecord.objects.filter(work_item_id=ids[1], action="delegate").exists()
    assert Profile.objects.get(user=alice).out_of_office_from is not None  # the absence itself stands


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
