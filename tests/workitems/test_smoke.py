from audit.models import AuditRecord
from events.models import OutboxEvent
from workitems import services


def test_create_claim_start_complete(make_item, alice):
    item = make_item()
    assert item.state == "OFFERED" and item.version == 1
    item = services.work_item_claim(item_id=item.pk, actor=alice)
    item = services.work_item_start(item_id=item.pk, actor=alice)
    item = services.work_item_complete(item_id=item.pk, actor=alice, result={"ok": True})
    assert item.state == "COMPLETED" and item.version == 4
    assert AuditRecord.objects.filter(work_item=item).count() == 4
    assert list(OutboxEvent.objects.filter(aggregate_id=str(item.pk)).values_list("event_type", flat=True)) == [
        "workitem.created.v1",
        "workitem.claimed.v1",
        "workitem.started.v1",
        "workitem.completed.v1",
    ]
