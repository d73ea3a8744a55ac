"""The audit trail partitioned by month of `created_at` (PostgreSQL; config/partitions.py).

The existing table, rows and all, becomes the partition `audit_auditrecord_legacy` (attached
with a CHECK constraint that lets ATTACH skip its scan; nothing is copied), the triggers that
keep records append-only are on the partitioned table (cloned onto every partition; TRUNCATE
is refused on each partition too), and a DEFAULT partition takes a record whose month has no
partition yet. Records keep their ids, hashes and links, so `audit_verify` passes as before.

(stream, seq) cannot stay a global unique constraint (PostgreSQL requires the partition key in
every unique index of a partitioned table): it becomes a plain index. What refuses a duplicate
seq is the stream's head: every record is written with its head's advance, which the head's
trigger (0005) lets move by exactly one, and the head row serialises the stream's writers; a
record inserted by hand around the head is what `audit_verify` reports.

Also the two maintenance functions (partitions ahead, old outbox partitions dropped).
SQLite: the constraint becomes the index, nothing else.
"""

from django.db import migrations, models

from config import partitions

STATE = [
    migrations.RemoveConstraint(model_name="auditrecord", name="audit_stream_seq_uniq"),
    migrations.AddIndex(model_name="auditrecord", index=models.Index(fields=["stream", "seq"], name="audit_stream_seq_idx")),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cur:
        cur.execute("SELECT current_schema()")
        cur.execute(partitions.functions_sql(cur.fetchone()[0]))
    partitions.partition_table(
        schema_editor, table="audit_auditrecord", key="created_at", indexes={"audit_stream_seq_idx": "stream, seq"}
    )


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY; the swap itself is one short transaction
    dependencies = [("audit", "0006_access_log"), ("archive", "0002_move_triggers")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=STATE,
            database_operations=[
                partitions.UnlessPostgreSQL(STATE),
                migrations.RunPython(forwards, partitions.not_reversed("audit 0007")),
            ],
        )
    ]
