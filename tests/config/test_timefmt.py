"""config/timefmt.py: the one time format (RFC 3339, UTC, `Z`), and the writers outside the
work-item walk (tests/events/test_time_format.py) that use it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework import serializers

from audit.models import AuditRecord
from audit.services import audit_verify
from config.timefmt import isoformat_z, now_z
from directory import services as directory_services
from events import webhooks
from events.models import Delivery, OutboxEvent

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
PLUS_TWO = timezone(timedelta(hours=2))
SAMPLES = [
    datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    datetime(2026, 3, 2, 9, 0, 0, 120, tzinfo=UTC),
    datetime(2026, 3, 2, 11, 30, 5, 654321, tzinfo=PLUS_TWO),
    datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-5))),
]


def test_isoformat_z():
    assert isoformat_z(None) is None
    assert isoformat_z(SAMPLES[0]) == "2026-03-02T09:00:00Z"
    assert isoformat_z(SAMPLES[1]) == "2026-03-02T09:00:00.000120Z"
    assert isoformat_z(SAMPLES[2]) == "2026-03-02T09:30:05.654321Z"
    assert isoformat_z(SAMPLES[3]) == "2000-01-01T04:59:59Z"
    assert isoformat_z(datetime(2026, 3, 2, 9, 0)) == "2026-03-02T09:00:00Z"  # naive: UTC
    assert RFC3339_Z.match(now_z())


@pytest.mark.parametrize("value", SAMPLES)
def test_drf_datetime_fields_write_what_the_helper_writes(value):
    """The API's DRF fields (REST_FRAMEWORK DATETIME_FORMAT) and the helper agree."""
    assert serializers.DateTimeField().to_representation(value) == isoformat_z(value)


@pytest.mark.django_db
def test_role_assignment_audit_data_is_written_with_z_and_the_chain_verifies(alice):
    role = directory_services.role_create(actor=None, code="reviewer", name="Reviewer", actions=["claim"])
    start = datetime(2026, 3, 2, 11, 0, tzinfo=PLUS_TWO)
    a = directory_services.role_assignment_grant(
        actor=None, user=alice, role=role, valid_from=start, valid_to=start + timedelta(days=400)
    )
    directory_services.role_assignment_revoke(actor=None, assignment=a, reason="done")
    records = list(AuditRecord.objects.filter(stream=f"roleassignment:{a.pk}").order_by("seq"))
    assert [r.action for r in records] == ["roleassignment.granted", "roleassignment.revoked"]
    assert records[0].data["valid_from"] == "2026-03-02T09:00:00Z"
    times = [records[0].data["valid_from"], records[0].data["valid_to"], records[1].data["revoked_at"]]
    assert all(RFC3339_Z.match(t) for t in times), times
    assert audit_verify(stream=f"roleassignment:{a.pk}").ok


@pytest.mark.django_db
def test_a_webhook_attempt_is_logged_with_z():
    event = OutboxEvent.objects.create(
        event_type="workitem.created.v1", aggregate_id="1", sequence=1, producer="t", payload={}
    )
    delivery = Delivery.objects.create(event=event, event_type=event.event_type, url="https://example.invalid/h")
    webhooks.record(delivery, webhooks.AttemptOutcome(False, 500, "HTTP 500", False, False, 0.01))
    delivery.refresh_from_db()
    assert RFC3339_Z.match(delivery.attempt_log[0]["at"]), delivery.attempt_log
