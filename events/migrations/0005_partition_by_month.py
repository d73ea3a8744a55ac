"""The outbox partitioned by month of `occurred_at` (PostgreSQL; config/partitions.py), so that
old events leave by dropping a month's partition instead of row by row.

The existing table becomes the partition `events_outboxevent_legacy` (attached, not copied),
with a DEFAULT partition for an event whose month has no partition yet; each partition gets the
outbox's aggressive autovacuum settings (a partitioned table takes none itself).

What changes with it, since every unique index of a partitioned table must hold the partition key:
- `event_id` is no longer unique in the database, only indexed: it is a uuid4 made by the
  server (`OutboxEvent.event_id`'s default), never taken from a caller;
- (aggregate_type, aggregate_id, sequence) is an index, no longer unique: the sequence is the
  item's version after the change, bumped under the item's row lock in the change's own
  transaction, which is what orders and separates an item's events;
- `Delivery.event` keeps no foreign-key constraint (it would need `occurred_at` as well): a
  delivery is created by the relay in the transaction that marks its event published, and goes
  with it (purge_published, or the partition's drop, which deletes the finished deliveries of its
  events and keeps a partition while any of them is pending).
SQLite: the same constraint changes, no partitioning.
"""

import uuid

import django.db.models.deletion
from django.db import migrations, models

from config import partitions

STATE = [
    migrations.RemoveConstraint(model_name="outboxevent", name="outbox_aggregate_seq_uniq"),
    migrations.AlterField(
        model_name="outboxevent",
        name="event_id",
        field=models.UUIDField(default=uuid.uuid4, editable=False),
    ),
    migrations.AddIndex(
        model_name="outboxevent",
        index=models.Index(fields=["aggregate_type", "aggregate_id", "sequence"], name="outbox_aggregate_seq_idx"),
    ),
    migrations.AddIndex(model_name="outboxevent", index=models.Index(fields=["event_id"], name="outbox_event_id_idx")),
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    partitions.partition_table(
        schema_editor,
        table="events_outboxevent",
        key="occurred_at",
        indexes={
            "outbox_aggregate_seq_idx": "aggregate_type, aggregate_id, sequence",
            "outbox_event_id_idx": "event_id",
        },
    )


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY; the swap itself is one short transaction
    dependencies = [("events", "0004_outbox_traceparent"), ("audit", "0007_partition_by_month")]
    operations = [
        migrations.AlterField(
            model_name="delivery",
            name="event",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="events.outboxevent",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=STATE,
            database_operations=[
                partitions.UnlessPostgreSQL(STATE),
                migrations.RunPython(forwards, partitions.not_reversed("events 0005")),
            ],
        ),
    ]
