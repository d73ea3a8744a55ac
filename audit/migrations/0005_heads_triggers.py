"""Heads for the streams recorded so far, and on PostgreSQL the triggers that keep the trail's
end in place: TRUNCATE is refused on the audit tables (a statement trigger: the row triggers
of 0003 do not see TRUNCATE), a head is never deleted and only ever advances by one record,
and a checkpoint is never changed, and the newest one never deleted.

Triggers bind every role that does not own the table, and the owner unless it disables them
(ALTER TABLE … DISABLE TRIGGER, or a superuser's session_replication_role = replica): see
`manage.py audit_verify --help` for what verify proves in that case.
"""

from django.db import migrations

# The last record of each stream, portable SQL (the data of an existing trail).
FILL_HEADS = """
INSERT INTO audit_audithead (stream, seq, hash, updated_at)
SELECT r.stream, r.seq, r.hash, r.created_at FROM audit_auditrecord r
WHERE r.seq = (SELECT MAX(m.seq) FROM audit_auditrecord m WHERE m.stream = r.stream)
"""


def _guard(table: str, function: str, row_ops: str) -> str:
    """Row triggers (before `row_ops`) and a statement trigger (before TRUNCATE) on `table`."""
    return f"""
DROP TRIGGER IF EXISTS {table}_no_change ON {table};
CREATE TRIGGER {table}_no_change BEFORE {row_ops} ON {table}
    FOR EACH ROW EXECUTE FUNCTION {function}();
DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION {function}();
"""


def _refuse(message: str) -> str:
    return f"""
    RAISE EXCEPTION '{message}: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';"""


CREATE = (
    # Records: the UPDATE/DELETE row trigger of 0003 stays; TRUNCATE gets a statement trigger.
    """
DROP TRIGGER IF EXISTS audit_auditrecord_no_truncate ON audit_auditrecord;
CREATE TRIGGER audit_auditrecord_no_truncate BEFORE TRUNCATE ON audit_auditrecord
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditrecord_immutable();

CREATE OR REPLACE FUNCTION audit_audithead_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.stream = OLD.stream AND NEW.seq = OLD.seq + 1 THEN
        RETURN NEW;
    END IF;"""
    + _refuse("audit heads only advance")
    + """
END;
$$ LANGUAGE plpgsql;
"""
    + _guard("audit_audithead", "audit_audithead_guard", "UPDATE OR DELETE")
    + """
CREATE OR REPLACE FUNCTION audit_auditcheckpoint_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_auditcheckpoint c WHERE c.created_at > OLD.created_at) THEN
        RETURN OLD;
    END IF;"""
    + _refuse("audit checkpoints are kept (only those older than the newest may be deleted)")
    + """
END;
$$ LANGUAGE plpgsql;
"""
    + _guard("audit_auditcheckpoint", "audit_auditcheckpoint_guard", "UPDATE OR DELETE")
)
DROP = """
DROP TRIGGER IF EXISTS audit_auditrecord_no_truncate ON audit_auditrecord;
DROP TRIGGER IF EXISTS audit_audithead_no_change ON audit_audithead;
DROP TRIGGER IF EXISTS audit_audithead_no_truncate ON audit_audithead;
DROP FUNCTION IF EXISTS audit_audithead_guard();
DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_change ON audit_auditcheckpoint;
DROP TRIGGER IF EXISTS audit_auditcheckpoint_no_truncate ON audit_auditcheckpoint;
DROP FUNCTION IF EXISTS audit_auditcheckpoint_guard();
"""


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_heads_checkpoints")]
    operations = [
        migrations.RunSQL(FILL_HEADS, migrations.RunSQL.noop),
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP)),
    ]
