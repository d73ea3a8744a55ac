"""claim-next over a list of queues: only those queues, ordered by score
(weight × (priority + minutes waited)), so a quiet queue's old item is not starved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests import factories
from workitems import services
from workitems.errors import NotFound, ValidationFailed
from workitems.models import WorkItem
from workitems.selectors import CLAIM_NEXT_AGING_SECONDS

pytestmark = pytest.mark.django_db


@pytest.fixture
def queues(team_a):
    return {
        name: factories.queue(name, groups=[team_a], **fields)
        for name, fields in (("urgent", {}), ("quiet", {}), ("other", {}), ("heavy", {"weight": 3}))
    }


def _age(item: WorkItem, seconds: float) -> None:
    """The item has waited `seconds` (its created_at moved back; nothing else about it changes)."""
    WorkItem.objects.filter(pk=item.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


def test_only_the_named_queues_in_either_form(svc, alice, queues):
    elsewhere = factories.item(actor=svc, queue=queues["other"], priority=100)
    a = factories.item(actor=svc, queue=queues["urgent"], priority=10)
    b = factories.item(actor=svc, queue=queues["quiet"], priority=20)
    got = services.work_item_claim_next(actor=alice, queue=["urgent", "quiet"])
    assert got.pk == b.pk
    got = services.work_item_claim_next(actor=alice, queues=["quiet", "urgent"])
    assert got.pk == a.pk
    assert services.work_item_claim_next(actor=alice, queues=["quiet", "urgent"]) is None
    assert WorkItem.objects.get(pk=elsewhere.pk).state == "OFFERED"
    # one name in a list is the single-queue claim-next
    assert services.work_item_claim_next(actor=alice, queue=["other"]).pk == elsewhere.pk


def test_unknown_names_and_bad_lists_are_refused(alice, queues):
    with pytest.raises(NotFound):
        services.work_item_claim_next(actor=alice, queues=["urgent", "no-such-queue"])
    for kwargs in ({"queues": []}, {"queue": [1]}, {"queue": "urgent", "queues": ["quiet"]}, {"queues": ["x"] * 21}):
        with pytest.raises(ValidationFailed):
            services.work_item_claim_next(actor=alice, **kwargs)


def test_a_queue_weight_multiplies_the_score(svc, alice, queues):
    plain = factories.item(actor=svc, queue=queues["urgent"], priority=100)
    weighted = factories.item(actor=svc, queue=queues["heavy"], priority=40)  # 3 × 40 > 1 × 100
    assert services.work_item_claim_next(actor=alice, queues=["urgent", "heavy"]).pk == weighted.pk
    assert services.work_item_claim_next(actor=alice, queues=["urgent", "heavy"]).pk == plain.pk


def test_a_stream_of_urgent_work_does_not_starve_an_old_item_in_another_queue(svc, alice, carol, queues):
    """Priority 100 arrives in `urgent` all the time; `quiet` holds one priority-0 item. While
    the quiet item is young, urgent work wins; once it has waited 100 points' worth of minutes
    (weight 1 each: 0 + age/60 s > 100 + the urgent item's own age), it is the next one taken,
    however much urgent work keeps arriving."""
    old = factories.item(actor=svc, queue=queues["quiet"], priority=0)
    taken = []
    for minutes in (0, 30, 60, 90, 99, 101, 120):
        _age(old, minutes * 60)
        factories.item(actor=svc, queue=queues["urgent"], priority=100)  # the stream goes on
        got = services.work_item_claim_next(actor=alice, queues=["urgent", "quiet"])
        taken.append((minutes, got.pk == old.pk))
        if got.pk == old.pk:
            break
    assert taken[-1] == (101, True), taken
    assert all(not was_old for _, was_old in taken[:-1])
    # without the list (all of the caller's queues), the order stays strict priority: the
    # urgent stream wins there, as it always did
    fresh_old = factories.item(actor=svc, queue=queues["quiet"], priority=0)
    _age(fresh_old, 10 * 3600)
    factories.item(actor=svc, queue=queues["urgent"], priority=100)
    assert services.work_item_claim_next(actor=carol).priority == 100
    assert CLAIM_NEXT_AGING_SECONDS == 60  # the formula docs/api.md gives


def test_the_score_ranks_named_candidates_outside_member_queues_too(svc, alice, bob, queues, team_b):
    """An item naming the caller in a queue it is not a member of competes by the same score."""
    mine = factories.queue("bobs", groups=[team_b])
    named = factories.item(actor=svc, queue=queues["quiet"], priority=5, candidate_users=["bob"])
    _age(named, 200 * 60)  # 5 + 200 points
    factories.item(actor=svc, queue=mine, priority=100)
    assert services.work_item_claim_next(actor=bob, queues=["quiet", "bobs"]).pk == named.pk


def test_multi_queue_claim_next_over_rest(api_as, svc, alice, queues):
    a = factories.item(actor=svc, queue=queues["urgent"], priority=90)
    resp = api_as(alice).post("/api/v1/workitems/claim-next", {"queues": ["urgent", "quiet"]}, format="json")
    assert resp.status_code == 200 and resp.json()["id"] == a.pk
    resp = api_as(alice).post("/api/v1/workitems/claim-next", {"queue": ["urgent", "quiet"]}, format="json")
    assert resp.status_code == 204
    resp = api_as(alice).post("/api/v1/workitems/claim-next", {"queue": ["urgent", "nope"]}, format="json")
    assert resp.status_code == 404 and "nope" in resp.json()["detail"]
