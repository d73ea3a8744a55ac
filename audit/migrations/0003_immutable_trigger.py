"""On PostgreSQL, a trigger makes the audit table append-only for every client,
not only for the ORM: UPDATE and DELETE raise. (TRUNCATE needs the table
owner's rights; production runs the application as a role that does not own
the tables.)"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION audit_auditrecord_immutable() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only: % on audit_auditrecord is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_auditrecord_no_change ON audit_auditrecord;
CREATE TRIGGER audit_auditrecord_no_change
    BEFORE UPDATE OR DELETE ON audit_auditrecord
    FOR EACH ROW EXECUTE FUNCTION audit_auditrecord_immutable();
"""
DROP = """
DROP TRIGGER IF EXISTS audit_auditrecord_no_change ON audit_auditrecord;
DROP FUNCTION IF EXISTS audit_auditrecord_immutable();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
