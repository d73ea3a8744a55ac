"""PostgreSQL only: a GIN index on context_data for containment queries (@>).
Kept out of Meta so that the embedded SQLite default still migrates."""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS wi_context_data_gin ON workitems_workitem "
            "USING gin (context_data jsonb_path_ops)"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS wi_context_data_gin")


class Migration(migrations.Migration):
    dependencies = [("workitems", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
