"""Archival (archive_items, restore_item) and GDPR erasure (erase_subject) on real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from archive.models import ArchivedAuditRecord, ArchivedWorkItem
from archive.services import archive_items, erase_subject
from archive.tasks import archive_due
from audit.models import AuditRecord
from audit.services import audit_checkpoint, audit_verify
from config import wsconfig
from notifications.models import Notification
from workitems import services
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db
OLD = timedelta(days=120)


def aged(item, by=OLD):
    """Make `item` have ended `by` ago (the test's clock, not a change of the item's story)."""
    WorkItem.objects.filter(pk=item.pk).update(closed_at=timezone.now() - by)
    return item


@pytest.fixture
def finished(make_item, alice, svc):
    """Three items that ended 120 days ago (completed, cancelled, failed), one completed
    yesterday, one still open."""

    def done(result=None, **kw):
        it = make_item(**kw)
        services.work_item_claim(item_id=it.pk, actor=alice)
        services.work_item_start(item_id=it.pk, actor=alice)
        return services.work_item_complete(item_id=it.pk, actor=alice, result=result or {"ok": True})

    completed = aged(done(context_data={"customer_id": "C-1001", "note": "for C-1001"}, result={"C-1001": "paid"}))
    cancelled = make_item(context_data={"customer_id": "C-1001"})
    cancelled = aged(services.work_item_cancel(item_id=cancelled.pk, actor=svc, reason="C-1001 withdrew"))
    it = services.work_item_start(item_id=services.work_item_claim(item_id=make_item().pk, actor=alice).pk, actor=alice)
    failed = aged(services.work_item_fail(item_id=it.pk, actor=alice, reason="cannot"))
    recent = aged(done(), by=timedelta(days=1))
    open_item = make_item()
    return {"old": [completed, cancelled, failed], "recent": recent, "open": open_item}


def stream_rows(table: str, item_id: int) -> int:
    with connection.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table} WHERE stream = %s", [f"workitem:{item_id}"])
        return cur.fetchone()[0]


def test_archive_moves_old_terminal_items_with_their_records_in_batches(finished):
    old_ids = sorted(i.pk for i in finished["old"])
    expected_records = sum(stream_rows("audit_auditrecord", i) for i in old_ids)
    audit_checkpoint()
    seen = []
    report = archive_items(older_than=timedelta(days=90), batch=2, progress=lambda r: seen.append(r.items))
    assert (report.items, report.records, report.batches) == (3, expected_records, 2)
    assert seen == [2, 3]
    assert sorted(ArchivedWorkItem.objects.values_list("id", flat=True)) == old_ids
    assert not WorkItem.objects.filter(pk__in=old_ids).exists()
    assert sorted(WorkItem.objects.values_list("id", flat=True)) == sorted([finished["recent"].pk, finished["open"].pk])
    for i in old_ids:
        assert stream_rows("audit_auditrecord", i) == 0 and stream_rows("archive_archivedauditrecord", i) > 0
    report = audit_verify()
    assert report.ok, report.reason
    assert report.archived_records == expected_records and report.redactions == 0
    # Archived rows keep their hashes: the newest checkpoint (signed before the move) still matches.
    assert report.checkpoint_id is not None


def test_audit_verify_command_names_the_archived_and_redacted_records(finished, capsys):
    archive_items(older_than=timedelta(days=90))
    erase_subject(context_key="customer_id", value="C-1001")
    call_command("audit_verify")
    out = capsys.readouterr().out
    report = audit_verify()
    assert report.ok and report.redactions >= 1
    assert f"{report.archived_records} of the records in the archive" in out
    assert f"{report.redactions} records redacted by erase_subject" in out


def test_dry_run_changes_nothing(finished, capsys):
    before = (WorkItem.objects.count(), AuditRecord.objects.count())
    call_command("archive_items", "--older-than", "90d", "--dry-run")
    out = capsys.readouterr().out
    assert "would move 3 items" in out
    assert (WorkItem.objects.count(), AuditRecord.objects.count()) == before
    assert not ArchivedWorkItem.objects.exists() and not ArchivedAuditRecord.objects.exists()


def test_command_prints_progress_and_counts(finished, capsys):
    call_command("archive_items", "--older-than", "90d", "--batch", "1")
    out = capsys.readouterr().out
    assert "batch 3: 3 items" in out and "moved 3 items" in out and "in 3 batches" in out
    with pytest.raises(CommandError, match="not an age"):
        call_command("archive_items", "--older-than", "ninety")
    with pytest.raises(CommandError, match="batch"):
        call_command("archive_items", "--older-than", "90d", "--batch", "0")


def test_records_cannot_be_deleted_or_edited_without_an_archive_copy(finished):
    rec = AuditRecord.objects.filter(work_item=finished["recent"]).first()
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM audit_auditrecord WHERE id = %s", [rec.pk])
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("UPDATE audit_auditrecord SET data = '{}' WHERE id = %s", [rec.pk])
    # A copy that differs (another hash) does not let the row go either.
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            "INSERT INTO archive_archivedauditrecord SELECT id, stream, seq, work_item_id, action, actor_id, "
            "actor_username, channel, from_state, to_state, data, request_id, correlation_id, created_at, "
            "prev_hash, 'forged' FROM audit_auditrecord WHERE id = %s",
            [rec.pk],
        )
        cur.execute("DELETE FROM audit_auditrecord WHERE id = %s", [rec.pk])
    # Redaction mode allows changing data only.
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL workstream.audit_redaction = 'on'")
        cur.execute("UPDATE audit_auditrecord SET hash = 'x' WHERE id = %s", [rec.pk])
    archive_items(older_than=timedelta(days=90))
    arch = ArchivedAuditRecord.objects.first()
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("DELETE FROM archive_archivedauditrecord WHERE id = %s", [arch.pk])
    with pytest.raises(Exception, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("TRUNCATE archive_archivedauditrecord")


def test_archived_item_is_read_by_id_and_history_for_who_could_see_it(finished, alice, bob, sam):
    item = finished["old"][0]
    archive_items(older_than=timedelta(days=90))
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(alice)
    resp = client.get(f"/api/v1/workitems/{item.pk}")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["archived"] is True and body["id"] == item.pk and body["state"] == "COMPLETED"
    assert body["allowed_actions"] == [] and body["context_data"]["customer_id"] == "C-1001"
    assert body["assignee"] == "alice" and body["queue"] == item.queue.name
    history = client.get(f"/api/v1/workitems/{item.pk}/history")
    assert history.status_code == 200
    assert [r["action"] for r in history.json()][0] == "create" and history.json()[-1]["to_state"] == "COMPLETED"
    client.force_authenticate(bob)  # another team: never could see it
    assert client.get(f"/api/v1/workitems/{item.pk}").status_code == 404
    assert client.get(f"/api/v1/workitems/{item.pk}/history").status_code == 404
    client.force_authenticate(sam)
    assert client.get(f"/api/v1/workitems/{item.pk}").json()["archived"] is True
    assert client.get("/api/v1/workitems/999999999").status_code == 404
    assert client.get(f"/api/v1/workitems/{2**64}").status_code == 404  # beyond bigint
    assert APIClient().get(f"/api/v1/workitems/{item.pk}").status_code in (401, 403)  # anonymous
    live = client.get(f"/api/v1/workitems/{finished['recent'].pk}").json()
    assert "archived" not in live


def test_restore_round_trips(finished, capsys):
    item = finished["old"][0]
    before = WorkItem.objects.filter(pk=item.pk).values().get()
    lists = sorted(WorkItem.objects.get(pk=item.pk).candidate_groups.values_list("pk", flat=True))
    records = list(AuditRecord.objects.filter(work_item_id=item.pk).order_by("seq").values())
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM stats_delta")
        deltas = cur.fetchone()[0]
    archive_items(older_than=timedelta(days=90))
    call_command("restore_item", str(item.pk))
    assert "restored work item" in capsys.readouterr().out
    assert WorkItem.objects.filter(pk=item.pk).values().get() == before
    assert sorted(WorkItem.objects.get(pk=item.pk).candidate_groups.values_list("pk", flat=True)) == lists
    assert list(AuditRecord.objects.filter(work_item_id=item.pk).order_by("seq").values()) == records
    assert not ArchivedWorkItem.objects.filter(pk=item.pk).exists()
    assert stream_rows("archive_archivedauditrecord", item.pk) == 0
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM stats_delta")
        assert cur.fetchone()[0] == deltas  # the restore counts no new events
    assert audit_verify().ok
    with pytest.raises(CommandError, match="not found"):
        call_command("restore_item", str(item.pk))
    # Archived again after restoring: the same rows move again.
    assert archive_items(older_than=timedelta(days=90)).items == 1  # the restored one, archived again


def test_a_tampered_archived_record_fails_verify(finished):
    archive_items(older_than=timedelta(days=90))
    # Whoever can disable the triggers (the owner) edits the archive: the chain shows it.
    with connection.cursor() as cur:
        cur.execute("ALTER TABLE archive_archivedauditrecord DISABLE TRIGGER USER")
        cur.execute("UPDATE archive_archivedauditrecord SET data = '{\"x\": 1}' WHERE seq = 2")
        cur.execute("ALTER TABLE archive_archivedauditrecord ENABLE TRIGGER USER")
    report = audit_verify()
    assert not report.ok and "altered" in report.reason


SECRET = "C-1001"


TABLES = (
    "workitems_workitem",
    "archive_archivedworkitem",
    "audit_auditrecord",
    "archive_archivedauditrecord",
    "events_outboxevent",
    "notifications_notification",
)


def traces(value: str) -> dict:
    """Rows in which `value` still occurs, per table, by raw SQL over the whole row."""
    found = {}
    with connection.cursor() as cur:
        for table in TABLES:
            cur.execute(f"SELECT count(*) FROM {table} t WHERE t::text LIKE %s", [f"%{value}%"])
            found[table] = cur.fetchone()[0]
    return found


def test_erase_subject_leaves_no_trace_and_the_chain_records_it(make_item, finished, svc, capsys):
    live = make_item(context_data={"customer_id": SECRET, "name": "Ada"}, title=f"call {SECRET}")
    live = services.work_item_cancel(item_id=live.pk, actor=svc, reason=f"duplicate of {SECRET}'s other item")
    other = make_item(context_data={"customer_id": "C-2002"})
    services.work_item_cancel(item_id=other.pk, actor=svc, reason="C-2002 left")
    archive_items(older_than=timedelta(days=90))  # the first old item (with the secret) is archived
    audit_checkpoint()
    note = Notification.objects.create(
        recipient=svc, event_id=uuid.uuid4(), kind="assigned", title=f"call {SECRET}", work_item_id=live.pk
    )
    assert traces(SECRET)["archive_archivedauditrecord"] > 0 and traces(SECRET)["audit_auditrecord"] > 0
    assert traces(SECRET)["events_outboxevent"] > 0
    call_command("erase_subject", "--context-key", "customer_id", "--value", SECRET, "--json")
    out = capsys.readouterr().out
    assert f'"live_items": [\n    {live.pk}\n  ]' in out
    left = traces(SECRET)
    assert left == dict.fromkeys(left, 0), left
    assert WorkItem.objects.get(pk=live.pk).context_data == {"customer_id": "[erased]", "name": "Ada"}
    assert Notification.objects.get(pk=note.pk).title == "call [erased]"
    assert WorkItem.objects.get(pk=other.pk).context_data == {"customer_id": "C-2002"}
    assert traces("C-2002")["audit_auditrecord"] > 0  # another subject's data stays
    tomb = AuditRecord.objects.get(stream=f"workitem:{live.pk}", action="workitem.erased")
    assert tomb.data["context_key"] == "customer_id" and tomb.data["redacted"]
    archived_tombs = ArchivedAuditRecord.objects.filter(action="workitem.erased")
    assert sorted(r.work_item_id or int(r.stream.split(":")[1]) for r in archived_tombs) == sorted(
        i.pk for i in finished["old"][:2]
    )
    redacted = len(tomb.data["redacted"]) + sum(len(r.data["redacted"]) for r in archived_tombs)
    assert redacted >= 2  # the live cancel's reason and the archived one's
    report = audit_verify()
    assert report.ok, report.reason
    assert report.redactions == redacted
    # A redacted record edited again is not what the erasure record names: verify fails.
    with connection.cursor() as cur:
        cur.execute("SET workstream.audit_redaction = 'on'")
        seq = int(next(iter(tomb.data["redacted"])))
        cur.execute(
            "UPDATE audit_auditrecord SET data = data || '{\"x\": 1}' WHERE stream = %s AND seq = %s",
            [tomb.stream, seq],
        )
        cur.execute("RESET workstream.audit_redaction")
    report = audit_verify()
    assert not report.ok and report.broken_stream == tomb.stream and report.broken_seq == seq


def test_erase_subject_refuses_empty_input():
    with pytest.raises(CommandError, match="value"):
        call_command("erase_subject", "--context-key", "customer_id", "--value", "")


def test_beat_job_is_off_by_default_and_archives_when_on(finished, settings, ws_config):
    assert settings.CELERY_BEAT_SCHEDULE["archive-items"]["task"] == "archive.archive_items"
    assert archive_due() is None and not ArchivedWorkItem.objects.exists()
    ws_config({"archive": {"enabled": True, "retentionDays": 90, "batchSize": 2}})
    assert archive_due() == 3
    with pytest.raises(wsconfig.ConfigError, match="archive"):
        ws_config({"archive": {"retentionDays": 0}})
