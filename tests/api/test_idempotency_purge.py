from datetime import timedelta

from django.utils import timezone

from api.models import IdempotencyRecord
from api.tasks import purge_idempotency_keys


def test_purge_removes_only_expired_records(db):
    fresh = IdempotencyRecord.objects.create(
        client="user:1", key="a", fingerprint="f", status_code=201, content_type="application/json", body=b"{}"
    )
    old = IdempotencyRecord.objects.create(
        client="user:1", key="b", fingerprint="f", status_code=201, content_type="application/json", body=b"{}"
    )
    IdempotencyRecord.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    assert purge_idempotency_keys() == 1
    assert list(IdempotencyRecord.objects.values_list("pk", flat=True)) == [fresh.pk]
