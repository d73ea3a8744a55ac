"""Least privilege in the database (issue 10, item 12), on real PostgreSQL.

A deployment as README "Security" describes it, built fresh for this module: an owner role (not
a superuser; it owns the database) applies the migrations through `DATABASE_MIGRATE_URL`
(`manage.py migrate --database migrate`), then `manage.py db_roles --create` makes the runtime
role of `DATABASE_URL` and grants it. The runtime role is then refused everything that would
rewrite or drop the audit trail, and every DDL, while the service itself runs as it.
(pytest-django's own test database is made and owned by the postgres superuser, so it cannot
show what an owner role may grant; this module makes its own database and drops it.)
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from psycopg import errors, sql

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = secrets.token_hex(4)
DATABASE = f"ws_roles_{SUFFIX}"
OWNER, OWNER_PW = f"ws_owner_{SUFFIX}", secrets.token_urlsafe(16)
RUNTIME, RUNTIME_PW = f"ws_app_{SUFFIX}", secrets.token_urlsafe(16)

pytestmark = pytest.mark.slow


def server() -> dict:
    db = settings.DATABASES["default"]
    return {"host": db.get("HOST") or "127.0.0.1", "port": db.get("PORT") or 5432}


def url(user: str, password: str = "", database: str = DATABASE) -> str:
    auth = quote(user) + (":" + quote(password) if password else "")
    return f"postgres://{auth}@{server()['host']}:{server()['port']}/{database}"


def connect(user: str, password: str = "", database: str = DATABASE) -> psycopg.Connection:
    return psycopg.connect(
        dbname=database, user=user, password=password or None, autocommit=True, connect_timeout=10, **server()
    )


def superuser(database: str = DATABASE) -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return connect(db.get("USER") or "postgres", db.get("PASSWORD") or "", database)


def manage(*args: str, database_url: str, migrate_url: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    env.update({"DATABASE_URL": database_url, "DB_CONN_MAX_AGE": "0", "REDIS_URL": settings.REDIS_URL})
    env.update({"LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    if migrate_url:
        env["DATABASE_MIGRATE_URL"] = migrate_url
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def db_roles(*args: str, runtime: str = RUNTIME, password: str = RUNTIME_PW) -> subprocess.CompletedProcess:
    return manage("db_roles", *args, database_url=url(runtime, password), migrate_url=url(OWNER, OWNER_PW))


@pytest.fixture(scope="module")
def deployment():
    with superuser("postgres") as su:
        su.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(sql.Identifier(OWNER), OWNER_PW))
        su.execute(f'CREATE DATABASE "{DATABASE}" OWNER "{OWNER}"')
    try:
        as_owner = {"database_url": url(RUNTIME), "migrate_url": url(OWNER, OWNER_PW)}
        migrated = manage("migrate", "--database", "migrate", "--no-input", **as_owner)
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        granted = db_roles("--create")
        assert granted.returncode == 0, granted.stderr[-3000:]
        yield
    finally:
        with superuser("postgres") as su:
            su.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            su.execute(f'DROP ROLE IF EXISTS "{RUNTIME}"')
            su.execute(f'DROP ROLE IF EXISTS "{OWNER}"')


def has(role: str, table: str, privilege: str) -> bool:
    with superuser() as su:
        return su.execute("SELECT has_table_privilege(%s, %s, %s)", [role, table, privilege]).fetchone()[0]


REFUSED = {
    # the audit trail: no rewriting, removing or emptying, whatever the triggers say
    "TRUNCATE audit_auditrecord": "permission denied for table audit_auditrecord",
    "TRUNCATE audit_auditrecord, workitems_workitem CASCADE": "permission denied for table",
    "DELETE FROM audit_auditrecord": "permission denied for table audit_auditrecord",
    "DELETE FROM audit_auditrecord WHERE stream = 'workitem:1'": "permission denied for table audit_auditrecord",
    "UPDATE audit_auditrecord SET action = 'x'": "permission denied for table audit_auditrecord",
    "DELETE FROM audit_audithead": "permission denied for table audit_audithead",
    "TRUNCATE audit_audithead": "permission denied for table audit_audithead",
    "UPDATE audit_auditcheckpoint SET mac = ''": "permission denied for table audit_auditcheckpoint",
    "TRUNCATE audit_auditcheckpoint": "permission denied for table audit_auditcheckpoint",
    # the access log is written and purged, never edited
    "UPDATE audit_accessrecord SET status = 200": "permission denied for table audit_accessrecord",
    "TRUNCATE audit_accessrecord": "permission denied for table audit_accessrecord",
    # nor switch its triggers off
    "ALTER TABLE audit_auditrecord DISABLE TRIGGER ALL": "must be owner of table audit_auditrecord",
    "DROP TRIGGER audit_auditrecord_no_truncate ON audit_auditrecord": "must be owner of",
    "SET session_replication_role = replica": 'permission denied to set parameter "session_replication_role"',
    # no DDL: not on the audit table, not on any other, not new objects
    "ALTER TABLE audit_auditrecord ADD COLUMN x integer": "must be owner of table audit_auditrecord",
    f'ALTER TABLE audit_auditrecord OWNER TO "{RUNTIME}"': "must be owner of table audit_auditrecord",
    "DROP TABLE audit_auditrecord": "must be owner of table audit_auditrecord",
    "CREATE INDEX ws_probe_idx ON audit_auditrecord (action)": "must be owner of table audit_auditrecord",
    "ALTER TABLE workitems_workitem ADD COLUMN x integer": "must be owner of table workitems_workitem",
    "TRUNCATE workitems_workitem": "permission denied for table workitems_workitem",
    "CREATE TABLE ws_probe (a integer)": "permission denied for schema public",
    "CREATE TABLE public.ws_probe AS SELECT 1 AS a": "permission denied for schema public",
    "CREATE VIEW ws_probe AS SELECT 1 AS a": "permission denied for schema public",
    "CREATE FUNCTION ws_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'": "permission denied for schema public",
    "CREATE SCHEMA ws_probe": "permission denied for database",
    # the owner alone records migrations
    "INSERT INTO django_migrations (app, name, applied) VALUES ('x', 'y', now())": "permission denied for table",
    "DELETE FROM django_migrations": "permission denied for table django_migrations",
}


# ids without the random role name: every pytest-xdist worker must collect the same tests
@pytest.mark.parametrize("statement", list(REFUSED), ids=[s.replace(RUNTIME, "<runtime>") for s in REFUSED])
def test_the_runtime_role_is_refused(deployment, statement):
    with connect(RUNTIME, RUNTIME_PW) as conn, pytest.raises(errors.InsufficientPrivilege) as refused:
        conn.execute(statement)
    # the privilege system refused it, not a trigger (whose message says "append-only", "only advance")
    assert REFUSED[statement] in str(refused.value), str(refused.value)


def test_the_runtime_role_may_read_and_write_what_the_service_needs(deployment):
    with connect(RUNTIME, RUNTIME_PW) as conn:
        for statement in (
            "SELECT count(*) FROM audit_auditrecord",
            "SELECT count(*) FROM django_migrations",
            "UPDATE workitems_workitem SET priority = priority",
            "DELETE FROM api_idempotencyrecord WHERE false",
            "DELETE FROM audit_accessrecord WHERE false",  # the retention purge
            "SELECT nextval('workitems_workitem_id_seq'::regclass)",
        ):
            conn.execute(statement)
    assert has(RUNTIME, "audit_auditrecord", "INSERT") and not has(RUNTIME, "audit_auditrecord", "UPDATE")


SERVICE = """
import json
import django
django.setup()
from audit.models import AuditCheckpoint, AuditImmutable, AuditRecord
from audit.services import audit_checkpoint, audit_verify
from tests import factories
from workitems import services

team = factories.group("roles-team")
svc = factories.user("roles-svc", roles=["service"])
worker = factories.user("roles-worker", roles=["worker"], groups=[team])
queue = factories.queue("roles-queue", groups=[team])
item = factories.item(actor=svc, queue=queue)
item = services.work_item_claim(item_id=item.pk, actor=worker)
item = services.work_item_start(item_id=item.pk, actor=worker)
item = services.work_item_complete(item_id=item.pk, actor=worker, result={"ok": True})
audit_checkpoint(keep=1)
audit_checkpoint(keep=1)  # the older one is deleted
try:
    AuditRecord.objects.filter(work_item=item).update(action="x")
    edited = True
except AuditImmutable:
    edited = False
print(json.dumps({
    "state": item.state,
    "records": AuditRecord.objects.filter(work_item=item).count(),
    "verify": audit_verify().ok,
    "checkpoints": AuditCheckpoint.objects.count(),
    "edited": edited,
}))
"""


def test_the_service_runs_as_the_runtime_role(deployment):
    """Creating, claiming, starting and completing an item (rows, audit records, heads, outbox),
    checkpoints and verify: all as the runtime role, without the migrate alias."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATABASE_")}
    env.update({"DATABASE_URL": url(RUNTIME, RUNTIME_PW), "DB_CONN_MAX_AGE": "0", "REDIS_URL": settings.REDIS_URL})
    env.update({"LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "config.settings"})
    proc = subprocess.run(
        [sys.executable, "-c", SERVICE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"state": "COMPLETED", "records": 4, "verify": True, "checkpoints": 1, "edited": False}, out


def test_db_roles_replaces_the_grants_and_covers_new_tables(deployment):
    """Run after each migrate: a privilege granted by hand is taken back, a new table is granted."""
    with connect(OWNER, OWNER_PW) as owner:
        owner.execute(f'GRANT UPDATE, DELETE, TRUNCATE ON audit_auditrecord TO "{RUNTIME}"')
        owner.execute(f'GRANT TRUNCATE, TRIGGER ON workitems_queue TO "{RUNTIME}"')
        owner.execute("CREATE TABLE ws_probe_new (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)")
    try:
        with connect(RUNTIME, RUNTIME_PW) as conn, pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM ws_probe_new")  # not granted yet: loud, not silent
        proc = db_roles()
        assert proc.returncode == 0, proc.stderr[-3000:]
        for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
            assert not has(RUNTIME, "audit_auditrecord", privilege), privilege
        assert not has(RUNTIME, "workitems_queue", "TRUNCATE") and not has(RUNTIME, "workitems_queue", "TRIGGER")
        assert has(RUNTIME, "workitems_queue", "UPDATE")
        with connect(RUNTIME, RUNTIME_PW) as conn:
            conn.execute("INSERT INTO ws_probe_new DEFAULT VALUES")
            conn.execute("DELETE FROM ws_probe_new")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("TRUNCATE ws_probe_new")
        assert db_roles().returncode == 0  # and again: idempotent
    finally:
        with connect(OWNER, OWNER_PW) as owner:
            owner.execute("DROP TABLE IF EXISTS ws_probe_new")


def refusal(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.strip().splitlines()[-1]


def test_db_roles_refuses_a_runtime_role_with_more_rights_and_changes_nothing(deployment):
    # same role as the owner; a superuser
    assert "same role" in refusal(db_roles(runtime=OWNER, password=OWNER_PW))
    su = settings.DATABASES["default"].get("USER") or "postgres"
    assert "has SUPERUSER" in refusal(db_roles(runtime=su, password=settings.DATABASES["default"].get("PASSWORD")))
    # owns something, or is a member of the owner: refused, and the grants stay as they were
    with connect(OWNER, OWNER_PW) as owner:
        owner.execute(f'GRANT TRUNCATE ON workitems_queue TO "{RUNTIME}"')
    with superuser() as s:
        s.execute("CREATE TABLE ws_probe_owned (a integer)")
        s.execute(f'ALTER TABLE ws_probe_owned OWNER TO "{RUNTIME}"')
    try:
        message = refusal(db_roles())
        assert "owns table public.ws_probe_owned" in message and "may own nothing" in message, message
        assert has(RUNTIME, "workitems_queue", "TRUNCATE")  # rolled back, not half applied
    finally:
        with superuser() as s:
            s.execute("DROP TABLE ws_probe_owned")
    with superuser() as s:
        s.execute(f'GRANT "{OWNER}" TO "{RUNTIME}"')
    try:
        assert f"member of the owner role {OWNER}" in refusal(db_roles())
    finally:
        with superuser() as s:
            s.execute(f'REVOKE "{OWNER}" FROM "{RUNTIME}"')
    assert db_roles().returncode == 0
    assert not has(RUNTIME, "workitems_queue", "TRUNCATE")


def test_db_roles_names_what_is_missing(deployment):
    no_alias = manage("db_roles", database_url=url(RUNTIME, RUNTIME_PW))
    assert "DATABASE_MIGRATE_URL" in refusal(no_alias)
    assert "does not exist: pass --create" in refusal(db_roles(runtime=f"ws_nobody_{SUFFIX}"))


def test_db_roles_sql_prints_the_grants_and_applies_nothing(deployment):
    with connect(OWNER, OWNER_PW) as owner:
        owner.execute(f'GRANT TRUNCATE ON workitems_queue TO "{RUNTIME}"')
    proc = db_roles("--create", "--sql")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'GRANT SELECT, INSERT ON TABLE "public"."audit_auditrecord" TO "{RUNTIME}";' in proc.stdout
    assert f'GRANT SELECT ON TABLE "public"."django_migrations" TO "{RUNTIME}";' in proc.stdout
    assert f'ALTER ROLE "{RUNTIME}" LOGIN PASSWORD' in proc.stdout and RUNTIME_PW not in proc.stdout
    assert has(RUNTIME, "workitems_queue", "TRUNCATE")
    assert db_roles().returncode == 0
