"""The end of the audit trail: TRUNCATE is refused, every stream ends at its head, and a signed
checkpoint of all heads finds streams deleted together with their heads (issue 10, item 6).

Tampering here is done the way only a superuser can: with `session_replication_role = replica`
(PostgreSQL fires no ordinary trigger then), inside the test's transaction.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from audit import tasks
from audit.models import AuditCheckpoint, AuditHead, AuditRecord
from audit.services import audit_checkpoint, audit_record, audit_verify
from workitems import services


@pytest.fixture
def streams(trail):
    """The trail's two stream names: 3 records and 2."""
    return tuple(f"workitem:{item.pk}" for item in trail)


def _sql(statement: str, params=()) -> None:
    with connection.cursor() as cur:
        cur.execute(statement, params)


def as_superuser_without_triggers(*statements: tuple[str, list] | str) -> None:
    """Run SQL with every ordinary trigger off, as `SET session_replication_role = replica` allows
    a superuser, for the rest of the statements only (the test's transaction rolls it all back)."""
    _sql("SET LOCAL session_replication_role = replica")
    try:
        for statement in statements:
            sql, params = (statement, []) if isinstance(statement, str) else statement
            _sql(sql, params)
    finally:
        _sql("SET LOCAL session_replication_role = origin")


def head(stream: str) -> tuple[int, str]:
    return AuditHead.objects.values_list("seq", "hash").get(stream=stream)


def last_hash(stream: str, seq: int) -> str:
    return AuditRecord.objects.get(stream=stream, seq=seq).hash


# --- TRUNCATE ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE audit_auditrecord",
        "TRUNCATE TABLE audit_auditrecord RESTART IDENTITY CASCADE",
        "TRUNCATE workitems_workitem CASCADE",  # reaches the audit table through its foreign key
        "TRUNCATE audit_audithead",
        "TRUNCATE audit_auditcheckpoint",
        "TRUNCATE audit_auditrecord, audit_audithead, audit_auditcheckpoint",
    ],
)
def test_truncate_is_refused_on_every_audit_table(statement, svc, queue, alice):
    """Committed rows, a superuser session (the tests connect as postgres): the trigger refuses."""
    item = services.work_item_create(actor=svc, data={"workflow_id": "w", "task_name": "t", "queue": queue.name})
    services.work_item_claim(item_id=item.pk, actor=alice)
    audit_checkpoint()
    counts = (AuditRecord.objects.count(), AuditHead.objects.count(), AuditCheckpoint.objects.count())
    with pytest.raises(DatabaseError, match="TRUNCATE on audit_"):
        _sql(statement)
    assert (AuditRecord.objects.count(), AuditHead.objects.count(), AuditCheckpoint.objects.count()) == counts
    report = audit_verify()
    assert report.ok and report.records_checked == 2 and report.checkpoint_id is not None


# --- heads ------------------------------------------------------------------------------------


def test_each_stream_has_its_head_written_with_its_records(streams):
    first, second = streams
    assert head(first) == (3, last_hash(first, 3))
    assert head(second) == (2, last_hash(second, 2))
    report = audit_verify()
    assert report.ok and (report.records_checked, report.streams_checked, report.heads_checked) == (5, 2, 2)


def test_audit_record_costs_two_statements_read_head_then_insert_with_upsert(streams):
    """The head is read, then the record and the head's UPSERT go as one statement (a CTE)."""
    first, _ = streams
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        audit_record(stream=first, action="note")
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 2, statements
    assert "audit_audithead" in statements[0] and statements[0].startswith("SELECT")
    assert statements[1].startswith('WITH s0 AS (INSERT INTO "audit_auditrecord"')
    assert 'INSERT INTO "audit_audithead"' in statements[1] and "ON CONFLICT" in statements[1]
    assert head(first) == (4, last_hash(first, 4))


@pytest.mark.parametrize("removed", [1, 2])
def test_deleting_a_streams_last_records_is_found_and_named(streams, removed):
    first, second = streams
    as_superuser_without_triggers(
        ("DELETE FROM audit_auditrecord WHERE stream = %s AND seq > %s", [first, 3 - removed])
    )
    report = audit_verify()
    assert not report.ok
    assert report.broken_stream == first and report.broken_seq == 3 - removed
    assert f"ends at seq {3 - removed} but its head is at seq 3" in report.reason and "missing" in report.reason
    assert not audit_verify(stream=first).ok
    assert audit_verify(stream=second).ok
    with pytest.raises(CommandError, match=f"stream={first} seq={3 - removed}"):
        call_command("audit_verify")


def test_a_change_after_the_tail_was_cut_keeps_the_gap_visible(streams, alice):
    """audit_record chains to the head, not to the last surviving record: the next change of the
    item does not paper over the deletion."""
    first, _ = streams
    as_superuser_without_triggers(("DELETE FROM audit_auditrecord WHERE stream = %s AND seq = 3", [first]))
    services.work_item_complete(item_id=int(first.split(":")[1]), actor=alice, result={"ok": True})
    assert head(first)[0] == 4
    report = audit_verify()
    assert not report.ok and report.broken_stream == first and report.broken_seq == 4
    assert "expected seq 3, found 4" in report.reason


def test_a_stream_whose_records_are_all_gone_is_named_by_its_head(streams):
    first, second = streams
    as_superuser_without_triggers(("DELETE FROM audit_auditrecord WHERE stream = %s", [second]))
    report = audit_verify()
    assert not report.ok and report.broken_stream == second and report.broken_seq == 2
    assert "no records but its head is at seq 2" in report.reason
    assert not audit_verify(stream=second).ok and audit_verify(stream=first).ok


def test_a_deleted_head_is_found(streams):
    first, _ = streams
    as_superuser_without_triggers(("DELETE FROM audit_audithead WHERE stream = %s", [first]))
    report = audit_verify()
    assert not report.ok and report.broken_stream == first and "no head" in report.reason


def test_records_written_beyond_the_head_are_found(streams):
    """A record inserted at the end without moving the head (e.g. copied in by SQL)."""
    first, _ = streams
    as_superuser_without_triggers(
        ("UPDATE audit_audithead SET seq = 2, hash = %s WHERE stream = %s", [last_hash(first, 2), first])
    )
    report = audit_verify()
    assert not report.ok and report.broken_stream == first and "beyond its head at seq 2" in report.reason


def test_heads_are_never_deleted_or_rewound_by_a_role_that_keeps_the_triggers(streams):
    first, _ = streams
    for statement, params in [
        ("DELETE FROM audit_audithead WHERE stream = %s", [first]),
        ("DELETE FROM audit_audithead", []),
        ("UPDATE audit_audithead SET seq = 2 WHERE stream = %s", [first]),  # rewind
        ("UPDATE audit_audithead SET seq = 5 WHERE stream = %s", [first]),  # skip ahead
        ("UPDATE audit_audithead SET stream = 'workitem:0' WHERE stream = %s", [first]),
        ("UPDATE audit_audithead SET hash = 'x' WHERE stream = %s", [first]),  # same seq
    ]:
        with pytest.raises(DatabaseError, match="heads only advance"), transaction.atomic():
            _sql(statement, params)
    assert head(first) == (3, last_hash(first, 3)) and audit_verify().ok


# --- checkpoints ------------------------------------------------------------------------------


def test_a_stream_deleted_with_its_head_is_found_by_the_checkpoint(streams):
    first, second = streams
    cp = audit_checkpoint()
    assert cp.heads == {first: 3, second: 2} and (cp.streams, cp.records) == (2, 5)
    as_superuser_without_triggers(
        ("DELETE FROM audit_auditrecord WHERE stream = %s", [second]),
        ("DELETE FROM audit_audithead WHERE stream = %s", [second]),
    )
    report = audit_verify()
    assert not report.ok and report.broken_stream == second and report.broken_seq == 2
    assert f"had seq 2 at checkpoint {cp.pk}" in report.reason and "deleted" in report.reason
    assert report.checkpoint_id == cp.pk
    assert not audit_verify(stream=second).ok and audit_verify(stream=first).ok
    with pytest.raises(CommandError, match=f"stream={second}"):
        call_command("audit_verify")


def test_without_a_checkpoint_a_stream_deleted_with_its_head_is_not_seen(streams):
    """The documented limit (audit_verify's docstring, README): the checkpoint is what sees it."""
    _, second = streams
    as_superuser_without_triggers(
        ("DELETE FROM audit_auditrecord WHERE stream = %s", [second]),
        ("DELETE FROM audit_audithead WHERE stream = %s", [second]),
    )
    report = audit_verify()
    assert report.ok and report.checkpoint_id is None and report.streams_checked == 1


def test_a_cut_tail_with_the_head_moved_back_is_found_by_the_checkpoint(streams):
    first, _ = streams
    audit_checkpoint()
    as_superuser_without_triggers(
        ("DELETE FROM audit_auditrecord WHERE stream = %s AND seq = 3", [first]),
        ("UPDATE audit_audithead SET seq = 2, hash = %s WHERE stream = %s", [last_hash(first, 2), first]),
    )
    report = audit_verify()
    assert not report.ok and report.broken_stream == first and report.broken_seq == 3
    assert "had seq 3 at checkpoint" in report.reason


def test_a_stream_rewritten_and_rehashed_from_the_start_fails_the_signature(streams):
    """Every link and the head agree after the rewrite; only the signed checkpoint remembers."""
    first, _ = streams
    audit_checkpoint()
    prev = ""
    statements = []
    for rec in AuditRecord.objects.filter(stream=first).order_by("seq"):
        rec.actor_username, rec.prev_hash = "mallory", prev
        rec.hash = rec.compute_hash()
        statements.append(
            (
                "UPDATE audit_auditrecord SET actor_username = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [rec.actor_username, rec.prev_hash, rec.hash, rec.pk],
            )
        )
        prev = rec.hash
    statements.append(("UPDATE audit_audithead SET hash = %s WHERE stream = %s", [prev, first]))
    as_superuser_without_triggers(*statements)
    assert audit_verify(stream=first).ok  # the chain alone is consistent again
    report = audit_verify()
    assert not report.ok and "does not match its signature" in report.reason


def test_a_checkpoint_signed_with_another_key_or_altered_fails(streams, settings):
    settings.AUDIT_CHECKPOINT_KEY = "the-key-in-force"
    cp = audit_checkpoint()
    assert audit_verify().ok
    settings.AUDIT_CHECKPOINT_KEY = "another-key"
    assert "does not match its signature" in audit_verify().reason
    settings.AUDIT_CHECKPOINT_KEY = "the-key-in-force"
    first, second = streams
    as_superuser_without_triggers(
        ("UPDATE audit_auditcheckpoint SET heads = %s WHERE id = %s", [json.dumps({first: 3}), cp.pk])
    )
    assert "does not match its signature" in audit_verify().reason


def test_the_key_is_derived_from_secret_key_when_unset(streams, settings):
    settings.AUDIT_CHECKPOINT_KEY = ""
    audit_checkpoint()
    assert audit_verify().ok
    settings.SECRET_KEY = settings.SECRET_KEY + "-rotated"
    assert not audit_verify().ok


def test_an_intact_history_verifies_with_changes_and_new_streams_after_the_checkpoint(streams, make_item, alice):
    first, second = streams
    older = audit_checkpoint()
    services.work_item_complete(item_id=int(first.split(":")[1]), actor=alice, result={"ok": True})
    audit_checkpoint()
    newest = audit_checkpoint()
    later = make_item()  # a stream younger than the newest checkpoint
    services.work_item_claim(item_id=later.pk, actor=alice)
    report = audit_verify()
    assert report.ok, report
    assert (report.records_checked, report.streams_checked, report.heads_checked) == (8, 3, 3)
    assert report.checkpoint_id == newest.pk != older.pk and report.checkpoint_at.endswith("Z")
    assert audit_verify(stream=first).ok and audit_verify(stream=f"workitem:{later.pk}").ok


def test_checkpoints_cannot_be_changed_nor_the_newest_deleted(streams):
    older, newest = audit_checkpoint(), audit_checkpoint()
    for statement, params in [
        ("UPDATE audit_auditcheckpoint SET mac = 'x' WHERE id = %s", [older.pk]),
        ("DELETE FROM audit_auditcheckpoint WHERE id = %s", [newest.pk]),
        ("DELETE FROM audit_auditcheckpoint", []),
    ]:
        with pytest.raises(DatabaseError, match="checkpoints are kept"), transaction.atomic():
            _sql(statement, params)
    assert AuditCheckpoint.objects.count() == 2
    _sql("DELETE FROM audit_auditcheckpoint WHERE id = %s", [older.pk])  # an older one may go
    assert list(AuditCheckpoint.objects.values_list("id", flat=True)) == [newest.pk]


def test_a_checkpoint_keeps_the_newest_and_drops_the_rest(streams):
    made = [audit_checkpoint(keep=3).pk for _ in range(5)]
    assert sorted(AuditCheckpoint.objects.values_list("id", flat=True)) == made[-3:]
    audit_checkpoint(keep=1)
    assert AuditCheckpoint.objects.count() == 1 and audit_verify().ok


def test_the_command_and_the_beat_job_make_checkpoints(streams, capsys):
    call_command("audit_checkpoint")
    out = json.loads(capsys.readouterr().out)
    cp = AuditCheckpoint.objects.get()
    assert out == {
        "checkpoint": cp.pk,
        "created_at": out["created_at"],
        "streams": 2,
        "records": 5,
        "mac": cp.mac,
    }
    with pytest.raises(CommandError, match="--keep"):
        call_command("audit_checkpoint", "--keep", "0")
    assert tasks.checkpoint.apply().get() != cp.pk
    job = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    assert job["task"] == tasks.checkpoint.name and job["schedule"] <= 3600
    call_command("audit_verify")
    assert "checkpoint" in capsys.readouterr().out


def test_verify_help_says_what_it_proves_and_what_it_cannot(capsys):
    with pytest.raises(SystemExit):
        call_command("audit_verify", "--help")
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("TRUNCATE", "head", "checkpoint", "session_replication_role", "key"):
        assert phrase in text, phrase


# --- the migration and flush ------------------------------------------------------------------


def test_the_migration_gives_an_existing_trail_its_heads(streams):
    from importlib import import_module

    fill = import_module("audit.migrations.0005_heads_triggers").FILL_HEADS
    first, second = streams
    before = dict(AuditHead.objects.values_list("stream", "seq"))
    as_superuser_without_triggers("DELETE FROM audit_audithead", fill)
    assert dict(AuditHead.objects.values_list("stream", "seq")) == before == {first: 3, second: 2}
    assert audit_verify().ok


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_audit_tables_only_for_a_superuser(svc, queue):
    services.work_item_create(actor=svc, data={"workflow_id": "w", "task_name": "t", "queue": queue.name})
    audit_checkpoint()
    assert AuditRecord.objects.exists()
    with connection.cursor() as cur:
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone()[0]
    call_command("flush", interactive=False, verbosity=0)
    assert not AuditRecord.objects.exists() and not AuditHead.objects.exists()
    assert not AuditCheckpoint.objects.exists()
    with connection.cursor() as cur:
        cur.execute("SHOW session_replication_role")
        assert cur.fetchone()[0] == "origin"


def test_flush_by_a_role_that_is_not_superuser_leaves_the_trail(streams):
    """The role is made inside the test's transaction, so it is gone with it."""
    count = AuditRecord.objects.count()
    _sql("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign-key events: TRUNCATE would refuse those
    _sql("CREATE ROLE ws_audit_flush_test NOSUPERUSER")
    _sql("GRANT ALL ON ALL TABLES IN SCHEMA public TO ws_audit_flush_test")
    _sql("SET ROLE ws_audit_flush_test")
    try:
        with pytest.raises(CommandError, match="couldn't be flushed") as refused:
            call_command("flush", interactive=False, verbosity=0)
    finally:
        _sql("RESET ROLE")
    assert "session_replication_role" in str(refused.value.__cause__)
    assert AuditRecord.objects.count() == count and audit_verify().ok


# --- the admin --------------------------------------------------------------------------------

SAVE_BUTTONS = ('name="_save"', 'name="_continue"', 'name="_addanother"')


@pytest.mark.parametrize("model", ["audithead", "auditcheckpoint"])
def test_heads_and_checkpoints_are_shown_read_only_in_the_admin(admin_client, streams, model):
    audit_checkpoint()
    listing = admin_client.get(f"/admin/audit/{model}/")
    assert listing.status_code == 200
    pk = (AuditHead if model == "audithead" else AuditCheckpoint).objects.values_list("pk", flat=True).first()
    page = admin_client.get(f"/admin/audit/{model}/{pk}/change/")
    assert page.status_code == 200 and not any(b in page.content.decode() for b in SAVE_BUTTONS)
    assert admin_client.post(f"/admin/audit/{model}/{pk}/change/", {}).status_code == 403
    assert admin_client.post(f"/admin/audit/{model}/{pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"/admin/audit/{model}/add/").status_code == 403
    assert audit_verify().ok
