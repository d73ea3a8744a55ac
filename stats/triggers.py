"""The database triggers that keep the statistics: one definition, rendered for PostgreSQL
and SQLite (the `make run` default).

A row trigger on workitems_workitem writes, in the changing transaction, the `stats_delta`
rows of the change (stats.models.Delta): for an update that changes the item's key
(queue, state, SLA state, assignee, creation time), -1 under the old key if the item was
open and +1 under the new one if it is open, with the events the change made (created,
completed, cancelled, failed, breached; a hand-out's wait, a completion's handling time)
on the new side. Updates that leave the key alone (a version bump, a priority) write nothing.
Everything that changes a work item, the ORM, a bulk insert, raw SQL or a script, is counted
alike; only TRUNCATE and `session_replication_role = replica` bypass it (run
`manage.py stats_rebuild` after either).
"""

from __future__ import annotations

from workitems.models import OPEN_STATES

TABLE = "workitems_workitem"
FUNCTION = "stats_workitem_delta"
TRIGGERS = ("stats_workitem_ins", "stats_workitem_upd", "stats_workitem_del")
OPEN_SQL = "(" + ", ".join(f"'{s}'" for s in OPEN_STATES) + ")"
KEY_COLUMNS = ("queue_id", "state", "sla_state", "assignee_id", "created_at")
DELTA_COLUMNS = (
    "queue_id, assignee_id, state, sla_state, item_created_at, n, at, created, completed, cancelled, failed, "
    "breached, with_due, on_time, wait_n, wait_s, handle_n, handle_s"
)


def seconds_between(vendor: str, later: str, earlier: str) -> str:
    """SQL for the seconds from `earlier` to `later` (two timestamp expressions)."""
    if vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))::float8"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def hour_of(vendor: str, ts: str) -> str:
    """SQL for the start of the UTC hour of `ts`."""
    if vendor == "postgresql":
        return f"date_trunc('hour', {ts}, 'UTC')"
    return f"strftime('%Y-%m-%d %H:00:00', {ts})"


def not_after(vendor: str, a: str, b: str) -> str:
    """SQL for `a <= b` of two timestamps (SQLite keeps them as text: compare them as days)."""
    if vendor == "postgresql":
        return f"{a} <= {b}"
    return f"julianday({a}) <= julianday({b})"


def _flag(cond: str) -> str:
    return f"CASE WHEN {cond} THEN 1 ELSE 0 END"


def _old_row() -> str:
    return "OLD.queue_id, OLD.assignee_id, OLD.state, OLD.sla_state, OLD.created_at, -1, NULL, " + ", ".join(["0"] * 11)


def _entered(inserted: bool, column: str, value: str) -> str:
    """The change made `column` equal `value` (an insert, or an update from another value)."""
    if inserted:
        return f"NEW.{column} = '{value}'"
    return f"NEW.{column} = '{value}' AND OLD.{column} <> '{value}'"


def _new_side(vendor: str, inserted: bool) -> tuple[str, str]:
    """(values, condition) of the new-side delta row of an insert or an update."""
    completed = _entered(inserted, "state", "COMPLETED")
    was_open = "TRUE" if inserted else f"OLD.state IN {OPEN_SQL}"
    closed = f"NEW.state IN ('COMPLETED', 'CANCELLED', 'FAILED') AND {was_open}"
    breached = _entered(inserted, "sla_state", "breached")
    handed_out = "NEW.assigned_at IS NOT NULL" + ("" if inserted else " AND OLD.assigned_at IS NULL")
    handled = f"{completed} AND NEW.assigned_at IS NOT NULL"
    events = {
        "created": "TRUE" if inserted else "FALSE",
        "completed": completed,
        "cancelled": _entered(inserted, "state", "CANCELLED"),
        "failed": _entered(inserted, "state", "FAILED"),
        "breached": breached,
    }
    # The events' hour: the item's own time of the event (the one the recount uses).
    at = (
        "NEW.created_at"
        if inserted
        else f"CASE WHEN {closed} THEN NEW.closed_at WHEN {breached} THEN NEW.breached_at "
        f"WHEN {handed_out} THEN NEW.assigned_at ELSE NULL END"
    )
    values = ", ".join(
        [
            "NEW.queue_id, NEW.assignee_id, NEW.state, NEW.sla_state, NEW.created_at",
            _flag(f"NEW.state IN {OPEN_SQL}"),
            at,
            *(_flag(c) for c in events.values()),
            _flag(f"{completed} AND NEW.due_at IS NOT NULL"),
            _flag(f"{completed} AND NEW.due_at IS NOT NULL AND {not_after(vendor, 'NEW.completed_at', 'NEW.due_at')}"),
            _flag(handed_out),
            f"CASE WHEN {handed_out} THEN "
            f"{seconds_between(vendor, 'NEW.assigned_at', 'COALESCE(NEW.offered_at, NEW.created_at)')} ELSE 0 END",
            _flag(handled),
            f"CASE WHEN {handled} THEN {seconds_between(vendor, 'NEW.completed_at', 'NEW.assigned_at')} ELSE 0 END",
        ]
    )
    condition = " OR ".join([f"NEW.state IN {OPEN_SQL}", *(f"({c})" for c in events.values()), f"({handed_out})"])
    return values, condition


def _key_changed(vendor: str) -> str:
    op = "IS DISTINCT FROM" if vendor == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{c} {op} NEW.{c}" for c in KEY_COLUMNS)


def _insert(values: str, condition: str) -> str:
    return f"INSERT INTO stats_delta ({DELTA_COLUMNS}) SELECT {values} WHERE {condition};"


def create_sql(vendor: str) -> list[str]:
    """The statements that create the trigger(s) on `vendor` ('postgresql' or 'sqlite')."""
    ins_values, ins_cond = _new_side(vendor, inserted=True)
    upd_values, upd_cond = _new_side(vendor, inserted=False)
    old_insert = _insert(_old_row(), f"OLD.state IN {OPEN_SQL}")
    ins, upd, dele = TRIGGERS
    if vendor == "postgresql":
        body = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    {_insert(ins_values, ins_cond)}
  ELSIF TG_OP = 'UPDATE' THEN
    {old_insert}
    {_insert(upd_values, upd_cond)}
  ELSE
    {old_insert}
  END IF;
  RETURN NULL;
END
$$;"""
        return [
            body,
            f"CREATE TRIGGER {ins} AFTER INSERT ON {TABLE} FOR EACH ROW EXECUTE FUNCTION {FUNCTION}();",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {TABLE} FOR EACH ROW WHEN ({_key_changed(vendor)}) "
            f"EXECUTE FUNCTION {FUNCTION}();",
            f"CREATE TRIGGER {dele} AFTER DELETE ON {TABLE} FOR EACH ROW WHEN (OLD.state IN {OPEN_SQL}) "
            f"EXECUTE FUNCTION {FUNCTION}();",
        ]
    if vendor == "sqlite":
        return [
            f"CREATE TRIGGER {ins} AFTER INSERT ON {TABLE} BEGIN {_insert(ins_values, ins_cond)} END;",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {TABLE} WHEN {_key_changed(vendor)} BEGIN "
            f"{old_insert} {_insert(upd_values, upd_cond)} END;",
            f"CREATE TRIGGER {dele} AFTER DELETE ON {TABLE} WHEN OLD.state IN {OPEN_SQL} BEGIN {old_insert} END;",
        ]
    raise NotImplementedError(f"stats triggers for the {vendor} database")


def drop_sql(vendor: str) -> list[str]:
    drops = [f"DROP TRIGGER IF EXISTS {name}" + (f" ON {TABLE}" if vendor == "postgresql" else "") for name in TRIGGERS]
    if vendor == "postgresql":
        drops.append(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    return drops


# Open items of a queue oldest first: `oldest_age_seconds` is one index probe per queue.
OLDEST_INDEX = "stats_wi_open_queue_created_idx"


def index_sql() -> str:
    return f"CREATE INDEX IF NOT EXISTS {OLDEST_INDEX} ON {TABLE} (queue_id, created_at) WHERE state IN {OPEN_SQL}"
