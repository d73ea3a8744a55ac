"""The triggers on workitems_workitem that write the deltas (stats/triggers.py), the index
behind oldest_age_seconds, and the counters recounted for the items already there."""

from django.db import migrations


def forwards(apps, schema_editor):
    from stats import rollup, triggers

    vendor = schema_editor.connection.vendor
    for sql in triggers.drop_sql(vendor) + triggers.create_sql(vendor) + [triggers.index_sql()]:
        schema_editor.execute(sql)
    rollup.rebuild(history=True, using=schema_editor.connection.alias)


def backwards(apps, schema_editor):
    from stats import triggers

    for sql in triggers.drop_sql(schema_editor.connection.vendor):
        schema_editor.execute(sql)
    schema_editor.execute(f"DROP INDEX IF EXISTS {triggers.OLDEST_INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("stats", "0001_initial"),
        ("workitems", "0009_queue_notifications"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
