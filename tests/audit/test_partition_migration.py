"""The migration path to the partitioned tables (audit 0007, events 0005) on a database with data.

A database of its own, made for this module: migrated to audit 0006 / events 0004 (every other
app to its newest migration), given a trail (demo data, an archived item, a checkpoint), then
migrated to the end, as `manage.py migrate` would on an upgrade. The trail verifies afterwards,
its rows never moved (the old tables are the `_legacy` partitions), and writing goes on.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
DATABASE = f"ws_partmig_{secrets.token_hex(4)}"

pytestmark = pytest.mark.slow

TO_BEFORE = """
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
executor = MigrationExecutor(connection)
before = {"audit": "0006_access_log", "events": "0004_outbox_traceparent"}
targets = [(app, before.get(app, name)) for app, name in executor.loader.graph.leaf_nodes()]
executor.migrate(targets)
"""
DATA = """
from datetime import timedelta
from django.utils import timezone
from archive.services import archive_items
from workitems.models import WorkItem
WorkItem.objects.filter(pk=WorkItem.objects.filter(state="COMPLETED").order_by("pk").values("pk")[:1]).update(
    closed_at=timezone.now() - timedelta(days=1))
print(archive_items(older_than=timedelta(hours=1)).items)
"""
AFTER = """
from config import context
from workitems import services
from workitems.models import Queue
from django.contrib.auth import get_user_model
svc = get_user_model().objects.get(username="svc")
with context.acting(channel="system"):
    queue = Queue.objects.order_by("pk").first().name
    item = services.work_item_create(actor=svc, data={"workflow_id": "wf-after", "run_id": "r-1",
                                                      "task_name": "review", "queue": queue})
print(item.pk)
"""


def manage(*args: str) -> str:
    db = settings.DATABASES["default"]
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    env.update(
        {
            "DATABASE_URL": f"postgres://{db.get('USER') or 'postgres'}@{host}:{port}/{DATABASE}",
            "DB_CONN_MAX_AGE": "0",
            "REDIS_URL": settings.REDIS_URL,
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
            "DEBUG": "true",
        }
    )
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


def superuser(database: str) -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(
        dbname=database,
        user=db.get("USER") or "postgres",
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        autocommit=True,
    )


@pytest.fixture(scope="module")
def scratch():
    with superuser("postgres") as su:
        su.execute(f'CREATE DATABASE "{DATABASE}"')
    try:
        yield
    finally:
        with superuser("postgres") as su:
            su.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def test_a_trail_at_audit_0006_verifies_after_the_migration_and_writing_goes_on(scratch):
    manage("shell", "-c", TO_BEFORE)
    manage("demo_data")
    assert int(manage("shell", "-c", DATA).split()[-1]) == 1
    manage("audit_checkpoint")
    before = json.loads(manage("audit_verify", "--json"))
    assert before["ok"] and before["archived_records"] > 0, before
    with superuser(DATABASE) as db:
        assert db.execute("SELECT relkind FROM pg_class WHERE relname = 'audit_auditrecord'").fetchone()[0] == "r"
        max_audit = db.execute("SELECT max(id) FROM audit_auditrecord").fetchone()[0]
        max_event, events = db.execute("SELECT max(id), count(*) FROM events_outboxevent").fetchone()

    manage("migrate", "--no-input")

    after = json.loads(manage("audit_verify", "--json"))
    assert after["ok"], after
    assert (after["records_checked"], after["archived_records"], after["checkpoint_id"]) == (
        before["records_checked"],
        before["archived_records"],
        before["checkpoint_id"],
    )
    with superuser(DATABASE) as db:
        for table, count in (
            ("audit_auditrecord", before["records_checked"] - before["archived_records"]),
            ("events_outboxevent", events),
        ):
            assert db.execute("SELECT relkind FROM pg_class WHERE relname = %s", [table]).fetchone()[0] == "p"
            rows = db.execute(f"SELECT tableoid::regclass::text, count(*) FROM {table} GROUP BY 1").fetchall()
            assert rows == [(f"{table}_legacy", count)]  # nothing copied, nothing lost
        with pytest.raises(psycopg.Error, match="append-only"):
            db.execute("DELETE FROM audit_auditrecord_legacy WHERE id = %s", [max_audit])
        with pytest.raises(psycopg.Error, match="append-only"):
            db.execute("TRUNCATE audit_auditrecord_legacy")
    item = int(manage("shell", "-c", AFTER).split()[-1])
    with superuser(DATABASE) as db:
        new_audit = db.execute("SELECT min(id) FROM audit_auditrecord WHERE work_item_id = %s", [item]).fetchone()[0]
        new_event = db.execute(
            "SELECT min(id) FROM events_outboxevent WHERE aggregate_id = %s", [str(item)]
        ).fetchone()[0]
    assert new_audit > max_audit and new_event > max_event  # the ids go on from the old sequences
    manage("audit_checkpoint")
    final = json.loads(manage("audit_verify", "--json"))
    assert final["ok"] and final["records_checked"] > after["records_checked"], final
