"""A create that names several queues goes to the active one with the fewest open items (read
from the statistics' maintained counters), ties to the first named; the choice is in the
create's audit record; unknown names are a 404 naming them, none active a 400."""

from __future__ import annotations

import pytest

from audit.models import AuditRecord
from tests import factories
from workitems import services
from workitems.errors import NotFound, ValidationFailed
from workitems.models import WorkItem


def body(queue, **extra):
    return {"workflow_id": "wf", "task_name": "review", "queue": queue, **extra}


def test_the_least_loaded_of_the_named_queues_takes_the_item(svc, team_a):
    busy = factories.queue("busy", groups=[team_a])
    quiet = factories.queue("quiet", groups=[team_a])
    for _ in range(3):
        services.work_item_create(actor=svc, data=body("busy"))
    services.work_item_create(actor=svc, data=body("quiet"))
    item = services.work_item_create(actor=svc, data=body(["busy", "quiet"]))
    assert item.queue_id == quiet.pk
    record = AuditRecord.objects.get(work_item_id=item.pk, action="create")
    assert record.data["queue_choice"] == {"candidates": {"busy": 3, "quiet": 1}, "chosen": "quiet"}
    # equal loads: the first named
    services.work_item_create(actor=svc, data=body("quiet"))
    services.work_item_create(actor=svc, data=body("quiet"))
    tie = services.work_item_create(actor=svc, data=body(["busy", "quiet"]))
    assert tie.queue_id == busy.pk  # busy 3, quiet 3 (after its item above): the first named
    inactive = factories.queue("closed", groups=[team_a], active=False)
    assert services.work_item_create(actor=svc, data=body(["closed", "quiet"])).queue_id == quiet.pk
    assert not WorkItem.objects.filter(queue=inactive).exists()


def test_bad_queue_lists_are_refused_and_create_nothing(svc, team_a):
    factories.queue("one", groups=[team_a])
    factories.queue("off", groups=[team_a], active=False)
    with pytest.raises(NotFound) as missing:
        services.work_item_create(actor=svc, data=body(["one", "nowhere"]))
    assert "nowhere" in missing.value.detail
    with pytest.raises(ValidationFailed) as none_active:
        services.work_item_create(actor=svc, data=body(["off"]))
    assert none_active.value.errors[0]["field"] == "queue"
    for bad in ([], ["one", "one"], [""], ["q"] * 21, [5]):
        with pytest.raises(ValidationFailed):
            services.work_item_create(actor=svc, data=body(bad))
    assert not AuditRecord.objects.filter(action="create").exists()


def test_over_rest_and_in_bulk(svc, team_a, api_as):
    factories.queue("left", groups=[team_a])
    right = factories.queue("right", groups=[team_a])
    services.work_item_create(actor=svc, data=body("left"))
    resp = api_as(svc).post("/api/v1/workitems", body(["left", "right"]), format="json")
    assert resp.status_code == 201 and resp.json()["queue"] == "right"
    bulk = api_as(svc).post("/api/v1/workitems/bulk", {"items": [body(["left", "right"]), body("left")]}, format="json")
    assert bulk.status_code == 201
    assert [i["queue"] for i in bulk.json()["items"]] == ["left", "left"]  # left 1, right 1: the first named
    assert WorkItem.objects.filter(queue=right).count() == 1
