"""Monthly range partitions of the audit trail and the outbox (PostgreSQL only; docs/operations.md,
"Partitions").

`audit_auditrecord` is partitioned by `created_at`, `events_outboxevent` by `occurred_at`, one
partition per calendar month (UTC) named `<table>_pYYYYMM`, plus:

- `<table>_legacy`: the table as it was before audit 0007 / events 0005, attached as the partition
  of everything before the first monthly one (`partition_table`: no row is copied);
- `<table>_default`: the DEFAULT partition, for a row whose month has no partition yet (an insert
  never fails for want of one).

Two functions in the database, SECURITY DEFINER (owned by the tables' owner, so the runtime role,
which owns nothing and may not run DDL, can still call them; they take values, never SQL):

- `workstream_partitions_ahead(months, dry_run)` creates the partitions of this month and the
  `months` after it that do not exist yet, for both tables;
- `workstream_outbox_drop_partition(retention_days, dry_run, as_of)` drops at most one outbox
  partition per call: one whose whole month ended more than the retention ago, none of whose
  events is unpublished (a dead letter counts only once it is older than the retention) and none
  of whose events has a webhook delivery pending. Audit partitions are never dropped.

`maintain()` runs both (the beat job `partitions-maintain`, `manage.py partitions`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.migrations.operations.base import Operation

log = logging.getLogger(__name__)

MONTHS_AHEAD = 3  # partitions created ahead of the current month
OUTBOX = "events_outboxevent"
AUDIT = "audit_auditrecord"
# Per partitioned table: its storage parameters (partitioned tables take none themselves, each
# partition gets them) and the trigger function that refuses TRUNCATE (statement triggers are not
# inherited by partitions, so each partition gets its own).
OUTBOX_STORAGE = (
    "autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02"
)
TABLES = {
    AUDIT: {"storage": "", "truncate_function": "audit_auditrecord_immutable"},
    OUTBOX: {"storage": OUTBOX_STORAGE, "truncate_function": None},
}


def _months_after(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return month.replace(year=index // 12, month=index % 12 + 1)


def _partition_extras(table: str, partition: str) -> list[str]:
    """What a new partition of `table` needs beyond what PostgreSQL copies from the parent."""
    spec = TABLES[table]
    sql = []
    if spec["storage"]:
        sql.append(f"ALTER TABLE {partition} SET ({spec['storage']})")
    if spec["truncate_function"]:
        sql.append(
            f"CREATE TRIGGER {partition}_no_truncate BEFORE TRUNCATE ON {partition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {spec['truncate_function']}()"
        )
    return sql


# --- the migration path -----------------------------------------------------------------------


def partition_table(schema_editor, *, table: str, key: str, indexes: dict[str, str]) -> None:
    """Make `table` a table partitioned by month on `key`, its rows left where they are.

    The existing table becomes the partition `<table>_legacy` of everything before the first
    monthly partition: a CHECK constraint on `key`, validated while writers go on (SHARE UPDATE
    EXCLUSIVE), lets ATTACH skip its scan, and the indexes the partitioned table has that the old
    one lacks (the primary key with `key` in it, and `indexes`, {name: columns}: the non-unique
    replacements of unique constraints that cannot be global any more) are built CONCURRENTLY
    first, so ATTACH adopts every index instead of building one. What is left is one short
    transaction (ACCESS EXCLUSIVE on the table: metadata only, `lock_timeout` 10 s): rename, create
    the parent with the old table's columns, defaults, checks, indexes, foreign keys and row
    triggers, attach, add the DEFAULT partition and the monthly ones ahead. The old table keeps its
    own unique constraints (they go on holding for its rows) and its TRUNCATE trigger; its primary
    key (id) becomes (id, `key`), since a partition can have one primary key only: the parent's.

    Needs a non-atomic migration (CREATE INDEX CONCURRENTLY). Incoming foreign keys must be gone
    first (a foreign key to a partitioned table needs the partition key).
    """
    legacy = f"{table}_legacy"
    conn = schema_editor.connection  # the migration's alias (`migrate --database migrate`)
    with conn.cursor() as cur:
        cur.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [table])
        if cur.fetchone()[0] == "p":
            return
        cur.execute("SELECT conname FROM pg_constraint WHERE confrelid = %s::regclass AND contype = 'f'", [table])
        if refs := [r[0] for r in cur.fetchall()]:
            raise RuntimeError(f"{table} is referenced by foreign keys {refs}: drop them before partitioning it")
        # 1. New indexes, built without blocking writers.
        cur.execute(f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {legacy}_pk_key ON {table} (id, {key})")
        for name, columns in indexes.items():
            cur.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name}_legacy ON {table} ({columns})")
        # 2. The old table's range: everything up to the first month that starts at least a week
        #    from now (and after its newest row), enforced for new rows at once.
        cur.execute(f"SELECT max({key}) FROM {table}")
        newest = cur.fetchone()[0]
        start = max(datetime.now(UTC) + timedelta(days=7), newest or datetime.now(UTC))
        upper = _months_after(start.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0), 1)
        bound = f"'{upper.isoformat()}'::timestamptz"
        cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {legacy}_range")
        cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT {legacy}_range CHECK ({key} < {bound}) NOT VALID")
        cur.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {legacy}_range")
        # 3. The swap.
        with transaction.atomic(using=conn.alias):
            cur.execute("SET LOCAL lock_timeout = '10s'")
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            _swap(cur, table=table, key=key, legacy=legacy, indexes=indexes, upper=upper)


def _swap(cur, *, table, key, legacy, indexes, upper) -> None:
    # The old table's primary key (id) gives way to the (id, key) index built before: a partition
    # may have one primary key only, and the parent's must be its.
    cur.execute(
        f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, "
        f"ADD CONSTRAINT {legacy}_pkey PRIMARY KEY USING INDEX {legacy}_pk_key"
    )
    cur.execute(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid), x.indisunique FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass",
        [table],
    )
    old_indexes = cur.fetchall()
    cur.execute(
        "SELECT tgname, pg_get_triggerdef(oid), (tgtype & 1) = 1 FROM pg_trigger "
        "WHERE tgrelid = %s::regclass AND NOT tgisinternal",
        [table],
    )
    triggers = cur.fetchall()  # (name, definition, row-level)
    cur.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
        [table],
    )
    foreign_keys = cur.fetchall()
    # The id sequence: an identity column cannot be on a partitioned table (PostgreSQL 15), so
    # the parent gets a plain sequence that goes on from where the old one was.
    cur.execute(f"SELECT COALESCE(max(id), 0) FROM {table}")
    max_id = cur.fetchone()[0]
    cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
    (old_sequence,) = cur.fetchone()
    next_id = max_id + 1
    if old_sequence:
        cur.execute(f"SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {old_sequence}")
        next_id = max(next_id, cur.fetchone()[0])
        cur.execute(f"ALTER TABLE {table} ALTER COLUMN id DROP IDENTITY IF EXISTS")
    new_names = {f"{name}_legacy" for name in indexes} | {f"{legacy}_pkey"}
    for name, _definition, _unique in old_indexes:
        if name not in new_names:
            cur.execute(f"ALTER INDEX {name} RENAME TO {name[:55]}_legacy")
    for name, _definition, row_level in triggers:
        if row_level:  # cloned onto every partition from the parent's, the old table's included
            cur.execute(f"DROP TRIGGER {name} ON {table}")
    cur.execute(f"ALTER TABLE {table} RENAME TO {legacy}")
    cur.execute(
        f"CREATE TABLE {table} (LIKE {legacy} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE ({key})"
    )
    cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {legacy}_range")
    cur.execute(f"CREATE SEQUENCE {table}_id_seq OWNED BY {table}.id START WITH {next_id}")
    cur.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT nextval('{table}_id_seq')")
    cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (id, {key})")
    for name, definition, unique in old_indexes:
        if not unique and name not in new_names:  # the old definition names the table: now the parent
            cur.execute(definition)
    for name, columns in indexes.items():
        cur.execute(f"CREATE INDEX {name} ON {table} ({columns})")
    for name, definition in foreign_keys:
        cur.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
    for _name, definition, _row_level in triggers:
        cur.execute(definition)  # the parent's (names are per table; the old TRUNCATE trigger stays)
    cur.execute(f"ALTER TABLE {table} ATTACH PARTITION {legacy} FOR VALUES FROM (MINVALUE) TO ('{upper.isoformat()}')")
    cur.execute(f"ALTER TABLE {legacy} DROP CONSTRAINT {legacy}_range")
    cur.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
    for sql in _partition_extras(table, f"{table}_default"):
        cur.execute(sql)
    cur.execute("SELECT * FROM workstream_partitions_ahead(%s, false)", [MONTHS_AHEAD])


def not_reversed(migration: str):
    """The backwards step of a partitioning migration: none on PostgreSQL (restore the backup
    taken before it), nothing to do elsewhere."""

    def backwards(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            raise RuntimeError(f"{migration} is not reversed on PostgreSQL: restore the backup taken before it")

    return backwards


# --- the functions maintenance calls ----------------------------------------------------------

_BOUND = """
    -- a partition's range from its bound expression: FROM ('…'|MINVALUE) TO ('…'|MAXVALUE)
    lo := COALESCE(substring(b from 'FROM \\(''([^'']*)''\\)')::timestamptz, '-infinity');
    hi := COALESCE(substring(b from 'TO \\(''([^'']*)''\\)')::timestamptz, 'infinity');
"""


def functions_sql(schema: str) -> str:
    """CREATE OR REPLACE of the two maintenance functions (run by the tables' owner)."""
    values = ", ".join(
        f"('{table}', '{spec['storage']}', {repr(spec['truncate_function']) if spec['truncate_function'] else 'NULL'})"
        for table, spec in TABLES.items()
    )
    return f"""
CREATE OR REPLACE FUNCTION workstream_partitions_ahead(months integer, dry_run boolean)
RETURNS TABLE (parent text, partition text, action text, detail text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    t record; p record; m timestamp; lower_ timestamptz; upper_ timestamptz; name text;
    b text; lo timestamptz; hi timestamptz; covered text;
BEGIN
    IF months < 0 OR months > 24 THEN
        RAISE EXCEPTION 'months ahead must be from 0 to 24, not %', months;
    END IF;
    FOR t IN SELECT * FROM (VALUES {values}) v(tbl, storage, truncate_fn) LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = to_regclass(t.tbl) AND c.relkind = 'p') THEN
            CONTINUE;
        END IF;
        FOR i IN 0..months LOOP
            m := date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i);
            lower_ := m AT TIME ZONE 'UTC';
            upper_ := (m + interval '1 month') AT TIME ZONE 'UTC';
            name := t.tbl || '_p' || to_char(m, 'YYYYMM');
            parent := t.tbl; partition := name;
            IF to_regclass(name) IS NOT NULL THEN
                action := 'exists'; detail := ''; RETURN NEXT; CONTINUE;
            END IF;
            covered := NULL;
            FOR p IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
                     JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(t.tbl) LOOP
                b := p.bound;
                CONTINUE WHEN b = 'DEFAULT';
                {_BOUND}
                IF lo < upper_ AND hi > lower_ THEN covered := p.relname; END IF;
            END LOOP;
            IF covered IS NOT NULL THEN
                action := 'covered'; detail := 'by ' || covered; RETURN NEXT; CONTINUE;
            END IF;
            IF dry_run THEN
                action := 'would create'; detail := lower_ || ' to ' || upper_; RETURN NEXT; CONTINUE;
            END IF;
            BEGIN
                -- Creating a partition locks the parent (ACCESS EXCLUSIVE) for a moment and scans
                -- the DEFAULT partition: never wait long behind a transaction that holds the table.
                PERFORM set_config('lock_timeout', '5s', true);
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               name, t.tbl, lower_, upper_);
                IF t.storage <> '' THEN
                    EXECUTE format('ALTER TABLE %I SET (' || t.storage || ')', name);
                END IF;
                IF t.truncate_fn IS NOT NULL THEN
                    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION %I()',
                                   name || '_no_truncate', name, t.truncate_fn);
                END IF;
                action := 'created'; detail := lower_ || ' to ' || upper_;
            EXCEPTION WHEN OTHERS THEN
                -- e.g. the DEFAULT partition already holds rows of this month: they stay there.
                action := 'failed'; detail := SQLERRM;
            END;
            RETURN NEXT;
        END LOOP;
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION workstream_outbox_drop_partition(
    retention_days integer, dry_run boolean, as_of timestamptz DEFAULT now())
RETURNS TABLE (partition text, range_end timestamptz, estimated_rows bigint, action text, detail text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    cutoff timestamptz; p record; b text; lo timestamptz; hi timestamptz;
    live boolean; pending boolean; dead bigint; dropped boolean := false;
BEGIN
    IF retention_days < 1 THEN
        RAISE EXCEPTION 'the retention must be at least one day, not %', retention_days;
    END IF;
    cutoff := as_of - make_interval(days => retention_days);
    FOR p IN SELECT c.relname, c.reltuples, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
             JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '{OUTBOX}'::regclass ORDER BY c.relname LOOP
        b := p.bound;
        CONTINUE WHEN b = 'DEFAULT';
        {_BOUND}
        partition := p.relname; range_end := hi; estimated_rows := GREATEST(p.reltuples, 0)::bigint;
        IF hi > cutoff THEN
            action := 'kept'; detail := 'its month is not past the retention'; RETURN NEXT; CONTINUE;
        END IF;
        IF dropped THEN  -- one drop per call: the caller commits it and calls again
            action := 'next'; detail := ''; RETURN NEXT; CONTINUE;
        END IF;
        -- Unpublished events (a dead letter only while it is younger than the retention: replay
        -- it before then) and pending webhook deliveries keep the partition: both probe small
        -- partial indexes.
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE published_at IS NULL AND '
                       '(dead_lettered_at IS NULL OR dead_lettered_at >= $1))', p.relname) INTO live USING cutoff;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM events_delivery d WHERE d.status = ''pending'' '
                       'AND d.event_id IN (SELECT id FROM %I))', p.relname) INTO pending;
        IF live OR pending THEN
            action := 'kept';
            detail := CASE WHEN live THEN 'it holds unpublished events' ELSE 'webhook deliveries are pending' END;
            RETURN NEXT; CONTINUE;
        END IF;
        EXECUTE format('SELECT count(*) FROM %I WHERE dead_lettered_at IS NOT NULL AND published_at IS NULL',
                       p.relname) INTO dead;
        IF dry_run THEN
            action := 'would drop'; detail := dead || ' dead letter(s) older than the retention';
            RETURN NEXT; CONTINUE;
        END IF;
        BEGIN
            -- Its finished deliveries go with it (Delivery.event has no database constraint: a
            -- foreign key to a partitioned table would need the partition key). Then a moment
            -- of ACCESS EXCLUSIVE on the outbox (DETACH needs it), the check again under it (a
            -- dead letter replayed meanwhile), and the drop.
            EXECUTE format('DELETE FROM events_delivery d USING %I o WHERE d.event_id = o.id', p.relname);
            PERFORM set_config('lock_timeout', '5s', true);
            LOCK TABLE {OUTBOX} IN ACCESS EXCLUSIVE MODE;
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE published_at IS NULL AND '
                           '(dead_lettered_at IS NULL OR dead_lettered_at >= $1)) OR EXISTS (SELECT 1 FROM '
                           'events_delivery d WHERE d.event_id IN (SELECT id FROM %I))', p.relname, p.relname)
                INTO live USING cutoff;
            IF live THEN
                RAISE EXCEPTION 'an event of % was replayed or delivered meanwhile', p.relname;
            END IF;
            EXECUTE format('ALTER TABLE {OUTBOX} DETACH PARTITION %I', p.relname);
            EXECUTE format('DROP TABLE %I', p.relname);
            action := 'dropped'; detail := dead || ' dead letter(s) older than the retention';
            dropped := true;
        EXCEPTION WHEN OTHERS THEN
            action := 'failed'; detail := SQLERRM;
        END;
        RETURN NEXT;
    END LOOP;
END;
$$;
"""


# --- maintenance ------------------------------------------------------------------------------


def is_partitioned(table: str) -> bool:
    """Whether `table` is a partitioned table here (never on SQLite)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass(%s) AND relkind = 'p')", [table])
        return cur.fetchone()[0]


def maintain(*, months_ahead: int = MONTHS_AHEAD, retention_days: int, dry_run: bool = False, as_of=None) -> list:
    """Create the partitions of the next `months_ahead` months and drop the outbox partitions
    that may go (the module docstring). Returns (table, partition, action, detail) per partition
    looked at; nothing on a database without partitioned tables."""
    if not (is_partitioned(AUDIT) or is_partitioned(OUTBOX)):
        return []
    report = []
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT * FROM workstream_partitions_ahead(%s, %s)", [months_ahead, dry_run])
        report += [(parent, name, action, detail) for parent, name, action, detail in cur.fetchall()]
    if is_partitioned(OUTBOX):
        seen = {}
        while True:
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(
                    "SELECT partition, action, detail FROM workstream_outbox_drop_partition(%s, %s, %s)",
                    [retention_days, dry_run, as_of or datetime.now(UTC)],
                )
                rows = cur.fetchall()
            for name, action, detail in rows:
                if action != "next":
                    seen[name] = (OUTBOX, name, action, detail)
            if dry_run or not any(action == "dropped" for _, action, _ in rows):
                break
        report += list(seen.values())
    for row in report:
        if row[2] in ("created", "dropped", "failed"):
            (log.warning if row[2] == "failed" else log.info)("partition %s: %s %s", row[1], row[2], row[3])
    return report


class UnlessPostgreSQL(Operation):
    """The database side of `operations` on every database but PostgreSQL (where the partitioning
    migration makes the same schema itself); no state of its own: it goes in the
    `database_operations` of a SeparateDatabaseAndState whose `state_operations` are the same."""

    reduces_to_sql = False
    reversible = True

    def __init__(self, operations):
        self.operations = operations

    def state_forwards(self, app_label, state):
        pass

    def _run(self, app_label, schema_editor, from_state, operations, backwards=False):
        if schema_editor.connection.vendor == "postgresql":
            return
        states = [from_state]
        for op in operations:
            state = states[-1].clone()
            op.state_forwards(app_label, state)
            states.append(state)
        steps = list(zip(operations, states, states[1:], strict=False))
        for op, before, after in reversed(steps) if backwards else steps:
            if backwards:
                op.database_backwards(app_label, schema_editor, after, before)
            else:
                op.database_forwards(app_label, schema_editor, before, after)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        self._run(app_label, schema_editor, from_state, self.operations)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        self._run(app_label, schema_editor, to_state, self.operations, backwards=True)

    def describe(self):
        return "The same schema change on a database other than PostgreSQL"

    def deconstruct(self):
        return (self.__class__.__qualname__, [self.operations], {})
