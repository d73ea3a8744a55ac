"""On PostgreSQL: audit records may MOVE between the live trail and the archive, never vanish,
and their `data` may be redacted (GDPR erasure), nothing else.

The trigger of audit 0003/0005 refused every UPDATE and DELETE of `audit_auditrecord`. It is
replaced by one that still refuses them, except:

- DELETE of a row when a row identical in every column (compared as `to_jsonb`) already exists in
  the other table: `archive_archivedauditrecord` for the live trail (archive_items copies the
  rows first, then deletes them in the same transaction) and `audit_auditrecord` for the archive
  (restore_item). A record is therefore never removed from both, and its hash and links are
  unchanged wherever it is, so `audit_verify` (which walks both tables) checks it as before.
- UPDATE that changes only `data`, in a transaction that has set `workstream.audit_redaction`
  to 'on' (`SET LOCAL`, archive.services.erase_subject). The setting is a guard against an
  accidental UPDATE, not a permission: any role can set it. What keeps a redaction visible is
  the chain: the record's stored hash is its original content's, so it no longer matches, and
  `audit_verify` accepts it only when a later `workitem.erased` record of the same stream (itself
  hash-chained and signed by the next checkpoint) names that seq with the hash of the redacted
  content; every accepted redaction is counted in the report.

TRUNCATE stays refused on both tables. The archive table gets the same rule.
"""

from importlib import import_module

from django.db import migrations

RULE = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
        SELECT 1 FROM {other} o WHERE o.id = OLD.id AND to_jsonb(o) = to_jsonb(OLD)
    ) THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND current_setting('workstream.audit_redaction', true) = 'on'
        AND to_jsonb(NEW) - 'data' = to_jsonb(OLD) - 'data' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit records are append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""
ARCHIVE_TRIGGERS = """
DROP TRIGGER IF EXISTS archive_archivedauditrecord_no_change ON archive_archivedauditrecord;
CREATE TRIGGER archive_archivedauditrecord_no_change BEFORE UPDATE OR DELETE ON archive_archivedauditrecord
    FOR EACH ROW EXECUTE FUNCTION archive_archivedauditrecord_guard();
DROP TRIGGER IF EXISTS archive_archivedauditrecord_no_truncate ON archive_archivedauditrecord;
CREATE TRIGGER archive_archivedauditrecord_no_truncate BEFORE TRUNCATE ON archive_archivedauditrecord
    FOR EACH STATEMENT EXECUTE FUNCTION archive_archivedauditrecord_guard();
"""
CREATE = (
    RULE.format(function="audit_auditrecord_immutable", other="archive_archivedauditrecord")
    + RULE.format(function="archive_archivedauditrecord_guard", other="audit_auditrecord")
    + ARCHIVE_TRIGGERS
)
# Back to audit 0003's function (refuse everything); the archive's triggers go with its table.
DROP = (
    import_module("audit.migrations.0003_immutable_trigger").CREATE
    + """
DROP TRIGGER IF EXISTS archive_archivedauditrecord_no_change ON archive_archivedauditrecord;
DROP TRIGGER IF EXISTS archive_archivedauditrecord_no_truncate ON archive_archivedauditrecord;
DROP FUNCTION IF EXISTS archive_archivedauditrecord_guard();
"""
)
_on_postgresql = import_module("audit.migrations.0005_heads_triggers")._on_postgresql


class Migration(migrations.Migration):
    dependencies = [("archive", "0001_initial"), ("audit", "0006_access_log")]
    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
