"""Pull details (claim-next order, follow_up_at, the named queue, 204) and the metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from tests import factories
from workitems import services
from workitems.errors import NotFound
from workitems.models import State


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


# --- claim-next ------------------------------------------------------------------------------


def test_claim_next_order_priority_then_due_then_created(make_item, alice):
    now = timezone.now()
    low = make_item(priority=10)
    due_late = make_item(priority=80, due_at=(now + timedelta(days=2)).isoformat())
    no_due = make_item(priority=80)
    due_soon = make_item(priority=80, due_at=(now + timedelta(hours=1)).isoformat())
    first_created = make_item(priority=95)
    second_created = make_item(priority=95)
    got = [services.work_item_claim_next(actor=alice).pk for _ in range(6)]
    assert got == [first_created.pk, second_created.pk, due_soon.pk, due_late.pk, no_due.pk, low.pk]
    assert services.work_item_claim_next(actor=alice) is None


def test_claim_next_follow_up_at_in_the_future_is_not_offered_until_it_passes(make_item, alice, monkeypatch):
    now = timezone.now()
    later = make_item(priority=100, follow_up_at=(now + timedelta(hours=1)).isoformat())
    assert later.state == State.OFFERED
    assert services.work_item_claim_next(actor=alice) is None
    other = make_item(priority=1)
    assert services.work_item_claim_next(actor=alice).pk == other.pk  # the lower one, not the waiting one
    # an hour and a minute later
    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(hours=1, minutes=1))
    got = services.work_item_claim_next(actor=alice)
    assert got is not None and got.pk == later.pk and got.state == State.ASSIGNED


def test_claim_next_follow_up_at_in_the_past_is_offered(make_item, alice):
    item = make_item(follow_up_at=(timezone.now() - timedelta(minutes=1)).isoformat())
    assert services.work_item_claim_next(actor=alice).pk == item.pk


def test_claim_next_in_a_named_queue_only(svc, team_a, alice):
    q1 = factories.queue("first", groups=[team_a])
    q2 = factories.queue("second", groups=[team_a])
    factories.item(actor=svc, queue=q1, priority=100)
    mine = factories.item(actor=svc, queue=q2, priority=1)
    assert services.work_item_claim_next(actor=alice, queue="second").pk == mine.pk
    assert services.work_item_claim_next(actor=alice, queue="second") is None
    with pytest.raises(NotFound):
        services.work_item_claim_next(actor=alice, queue="no-such-queue")


def test_claim_next_only_from_the_callers_queues_and_not_inactive_ones(svc, team_a, team_b, alice, bob):
    theirs = factories.queue("theirs", groups=[team_b])
    closed = factories.queue("closed", groups=[team_a])
    factories.item(actor=svc, queue=theirs)
    factories.item(actor=svc, queue=closed)
    closed.active = False
    closed.save()
    assert services.work_item_claim_next(actor=alice) is None
    assert services.work_item_claim_next(actor=bob) is not None


def test_claim_next_over_http_204_when_nothing_is_left(make_item, alice):
    item = make_item()
    c = APIClient()
    c.force_authenticate(alice)
    r = c.post("/api/v1/workitems/claim-next", {}, format="json")
    assert r.status_code == 200 and r.json()["id"] == item.pk and r.json()["assignee"] == "alice"
    r = c.post("/api/v1/workitems/claim-next", {}, format="json")
    assert r.status_code == 204 and r.content == b""


# --- metrics ----------------------------------------------------------------------------------


def test_resolution_time_is_observed_on_every_push(svc, team_a, alice, carol):
    q = factories.queue("metric-ll", groups=[team_a], strategy="least_loaded")
    before_count = sample("distribution_resolution_time_ms_count")
    before_sum = sample("distribution_resolution_time_ms_sum")
    factories.item(actor=svc, queue=q)
    factories.item(actor=svc, queue=q)
    assert sample("distribution_resolution_time_ms_count") == before_count + 2
    assert sample("distribution_resolution_time_ms_sum") > before_sum
    assert sample("distribution_resolution_time_ms_bucket", le="+Inf") >= before_count + 2


def test_pull_items_are_not_resolved(make_item):
    before = sample("distribution_resolution_time_ms_count")
    make_item()
    assert sample("distribution_resolution_time_ms_count") == before


@pytest.mark.parametrize("strategy", ["round_robin", "random", "least_loaded", "longest_idle", "skill_based"])
def test_assignments_are_counted_per_strategy(svc, team_a, alice, strategy):
    q = factories.queue(f"metric-{strategy.replace('_', '-')}", groups=[team_a], strategy=strategy)
    before = sample("distribution_assignments_total", strategy=strategy)
    others = {s: sample("distribution_assignments_total", strategy=s) for s in ("direct", "offer")}
    item = factories.item(actor=svc, queue=q)
    assert item.assignee == alice
    assert sample("distribution_assignments_total", strategy=strategy) == before + 1
    assert {s: sample("distribution_assignments_total", strategy=s) for s in others} == others


def test_direct_assignment_and_unassigned_are_counted(svc, queue, alice):
    direct = sample("distribution_assignments_total", strategy="direct")
    factories.item(actor=svc, queue=queue, assignee="alice")
    assert sample("distribution_assignments_total", strategy="direct") == direct + 1
    excluded = sample("distribution_unassigned_total", reason="excluded")
    factories.item(actor=svc, queue=queue, assignee="alice", excluded_users=["alice"])
    assert sample("distribution_unassigned_total", reason="excluded") == excluded + 1
