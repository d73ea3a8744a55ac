"""SLA at case level: an item's own due_at comes first, then its case's, then its queue's SLA;
the item's SLA clock and state follow from the deadline it got."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tests import factories
from workitems import services
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db
CASE_DUE = "2031-03-01T09:00:00Z"


@pytest.fixture
def sla_queue(team_a):
    return factories.queue("sla-queue", groups=[team_a], sla=timedelta(hours=4))


def test_precedence_item_then_case_then_queue(svc, sla_queue, make_case):
    make_case("SLA-1", due_at=CASE_DUE)
    make_case("SLA-2")  # no deadline of its own
    own = factories.item(actor=svc, queue=sla_queue, case="SLA-1", due_at="2030-12-24T12:00:00Z")
    inherited = factories.item(actor=svc, queue=sla_queue, case="SLA-1")
    before = timezone.now()
    from_queue = factories.item(actor=svc, queue=sla_queue, case="SLA-2")
    no_case = factories.item(actor=svc, queue=sla_queue)
    assert own.due_at == datetime(2030, 12, 24, 12, tzinfo=UTC)
    assert inherited.due_at == datetime(2031, 3, 1, 9, tzinfo=UTC)
    for item in (from_queue, no_case):
        assert before + timedelta(hours=4) <= item.due_at <= timezone.now() + timedelta(hours=4)


def test_an_inherited_deadline_runs_the_items_sla_clock(svc, queue, make_case):
    past = (timezone.now() - timedelta(minutes=5)).isoformat()
    make_case("LATE-1", due_at=past)
    make_case("SOON-1", due_at=CASE_DUE)
    late = WorkItem.objects.get(pk=factories.item(actor=svc, queue=queue, case="LATE-1").pk)
    assert (late.sla_state, late.breached_at is not None) == ("breached", True)
    soon = WorkItem.objects.get(pk=factories.item(actor=svc, queue=queue, case="SOON-1").pk)
    assert soon.sla_state == "on_track" and soon.sla_started_at is not None and soon.sla_next_at is not None


def test_a_case_deadline_in_bulk_and_an_item_update_after(svc, sam, queue, make_case):
    make_case("BULK-SLA", due_at=CASE_DUE)
    items = services.work_item_create_many(
        actor=svc, items=[factories.item_body(queue, case="BULK-SLA") for _ in range(3)]
    )
    assert {i.due_at for i in items} == {datetime(2031, 3, 1, 9, tzinfo=UTC)}
    moved = services.work_item_update(item_id=items[0].pk, actor=sam, changes={"due_at": "2031-04-01T00:00:00Z"})
    assert moved.due_at == datetime(2031, 4, 1, tzinfo=UTC)  # the item's own from now on; the case keeps its own
    assert WorkItem.objects.get(pk=items[1].pk).due_at == datetime(2031, 3, 1, 9, tzinfo=UTC)
