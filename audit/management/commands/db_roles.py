"""`manage.py db_roles`: the service's runtime role gets what it needs and nothing more.

Two PostgreSQL roles (README "Security"):

- the **owner** (DATABASE_MIGRATE_URL, the `migrate` alias): owns the schema's tables, runs
  `manage.py migrate --database migrate` and this command;
- the **runtime** role (DATABASE_URL, what web, workers, beat, relay and consumers connect as):
  owns nothing, so it cannot ALTER, DROP, TRUNCATE or disable a trigger; it may not CREATE in the
  schema or the database (no DDL); it reads and writes the tables as `privileges_of` says, which
  keeps the audit trail append-only even without its triggers.

Run it after every migrate (a new table has no grants until it runs: the service then fails
loudly on that table instead of holding more rights than it should). It is idempotent: each
table's grants to the runtime role are replaced, not added to, and the result is read back
from PostgreSQL (`has_table_privilege`, which sees grants to PUBLIC and inherited roles too);
any difference rolls everything back and names the table.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction

READ_WRITE = ("SELECT", "INSERT", "UPDATE", "DELETE")
# Tables the runtime role may not change freely, by model: the audit trail and the access log
# (audit/models.py).
RESTRICTED_MODELS = {
    "audit.AuditRecord": ("SELECT", "INSERT"),  # append-only
    "audit.AuditHead": ("SELECT", "INSERT", "UPDATE"),  # advanced with each record (a trigger: by one)
    "audit.AuditCheckpoint": ("SELECT", "INSERT", "DELETE"),  # older ones dropped (a trigger keeps the newest)
    "audit.AccessRecord": ("SELECT", "INSERT", "DELETE"),  # written once, purged after the retention, never edited
}
RESTRICTED_TABLES = {"django_migrations": ("SELECT",)}  # the owner records migrations
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT")  # nextval and currval, not setval


def privileges_of(table: str) -> tuple[str, ...]:
    """What the runtime role may do on `table`."""
    restricted = {apps.get_model(label)._meta.db_table: p for label, p in RESTRICTED_MODELS.items()}
    return {**restricted, **RESTRICTED_TABLES}.get(table, READ_WRITE)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Command(BaseCommand):
    help = (
        "Grant the runtime role (the user of DATABASE_URL) exactly what the service needs, as the owner "
        "role (DATABASE_MIGRATE_URL): full read/write on the application's tables except the audit "
        "trail (records: SELECT, INSERT; heads: no DELETE; checkpoints and the access log: no UPDATE) "
        "and django_migrations (SELECT), USAGE on sequences, no TRUNCATE anywhere, no CREATE in the "
        "schema or database. "
        "Refuses a runtime role that is the owner, a member of it, a superuser, or owns anything. "
        "Run after every migrate."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--database", default="migrate", help="the owner's alias (default: migrate, from DATABASE_MIGRATE_URL)"
        )
        parser.add_argument("--role", help="the runtime role (default: the user of DATABASE_URL)")
        parser.add_argument(
            "--create",
            action="store_true",
            help="create the runtime role (LOGIN, no other attributes) if it is missing, and set its password "
            "to DATABASE_URL's; the owner needs CREATEROLE",
        )
        parser.add_argument("--sql", action="store_true", help="print the statements instead of running them")

    def handle(self, *args, **options):
        alias = options["database"]
        if alias not in settings.DATABASES:
            hint = " (set DATABASE_MIGRATE_URL to the owner role's URL)" if alias == "migrate" else ""
            raise CommandError(f"no database alias {alias!r}{hint}")
        connection = connections[alias]
        if connection.vendor != "postgresql":
            raise CommandError(f"database roles need PostgreSQL; {alias!r} is {connection.vendor}")
        role = options["role"] or settings.DATABASES["default"].get("USER") or ""
        if not role:
            raise CommandError("no runtime role: DATABASE_URL names no user (or pass --role)")
        password = settings.DATABASES["default"].get("PASSWORD") or None
        with transaction.atomic(using=alias), connection.cursor() as cur:
            statements = self.plan(cur, role, password if options["create"] else None, options["create"])
            if options["sql"]:
                for sql, params in statements:
                    self.stdout.write((sql % tuple("'<password of DATABASE_URL>'" for _ in params)) + ";")
                transaction.set_rollback(True, using=alias)
                return
            for sql, params in statements:
                cur.execute(sql, params)
            self.verify(cur, role)
            kinds = [kind for _, kind in self.relations(cur, "")]
        self.stdout.write(
            f"runtime role {role}: grants on {len(kinds) - kinds.count('S')} tables and {kinds.count('S')} sequences"
        )

    def plan(self, cur, role: str, password: str | None, create: bool) -> list[tuple[str, list]]:
        cur.execute("SELECT current_user, current_database(), current_schema()")
        owner, database, schema = cur.fetchone()
        if role == owner:
            raise CommandError(
                f"DATABASE_URL and the owner connection are the same role ({role}): the service would own "
                "the tables (and could ALTER, TRUNCATE or disable their triggers); give it a role of its own"
            )
        attributes = ("SUPERUSER", "CREATEROLE", "CREATEDB", "BYPASSRLS", "REPLICATION")
        cur.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication "
            "FROM pg_roles WHERE rolname = %s",
            [role],
        )
        found = cur.fetchone()
        statements: list[tuple[str, list]] = []
        if found is None:
            if not create:
                raise CommandError(f"role {role} does not exist: pass --create, or have the DBA create it (LOGIN)")
            login = "LOGIN PASSWORD %s" if password else "LOGIN"
            statements.append(
                (
                    f"CREATE ROLE {ident(role)} {login} NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
                    [password] if password else [],
                )
            )
        else:
            held = [a for a, on in zip(attributes, found, strict=True) if on]
            if held:
                raise CommandError(f"role {role} has {', '.join(held)}: the runtime role may have none of these")
            self.refuse_ownership(cur, role, owner, database)
            if create and password:
                statements.append((f"ALTER ROLE {ident(role)} LOGIN PASSWORD %s", [password]))
        r = ident(role)
        statements += [
            (f"GRANT CONNECT ON DATABASE {ident(database)} TO {r}", []),
            (f"REVOKE CREATE ON DATABASE {ident(database)} FROM {r}", []),
            (f"GRANT USAGE ON SCHEMA {ident(schema)} TO {r}", []),
            (f"REVOKE CREATE ON SCHEMA {ident(schema)} FROM {r}", []),
        ]
        parts = self.partitions(cur, schema)
        for name, kind in self.relations(cur, schema):
            obj = f"{ident(schema)}.{ident(name)}"
            privileges = SEQUENCE_PRIVILEGES if kind == "S" else privileges_of(name)
            what = "SEQUENCE" if kind == "S" else "TABLE"
            statements.append((f"REVOKE ALL ON {what} {obj} FROM {r}", []))
            if name not in parts:
                statements.append((f"GRANT {', '.join(privileges)} ON {what} {obj} TO {r}", []))
        return statements

    @staticmethod
    def partitions(cur, schema: str) -> set[str]:
        """The schema's partitions (config/partitions.py): the runtime role gets nothing on them,
        since it reaches their rows through the partitioned table, whose privileges PostgreSQL
        checks (and a partition the beat job creates later has no grants either)."""
        cur.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = COALESCE(NULLIF(%s, ''), current_schema()) AND c.relispartition",
            [schema],
        )
        return {row[0] for row in cur.fetchall()}

    @staticmethod
    def relations(cur, schema: str) -> list[tuple[str, str]]:
        """The schema's (default: the current schema's) tables, ordinary and partitioned, and sequences."""
        cur.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = COALESCE(NULLIF(%s, ''), current_schema()) AND c.relkind IN ('r', 'p', 'S') "
            "ORDER BY c.relkind, c.relname",
            [schema],
        )
        return cur.fetchall()

    @staticmethod
    def refuse_ownership(cur, role: str, owner: str, database: str) -> None:
        """The runtime role may not be (in) the owner, nor own anything in this database."""
        cur.execute("SELECT pg_has_role(%s, %s, 'USAGE')", [role, owner])
        if cur.fetchone()[0]:
            raise CommandError(f"role {role} is a member of the owner role {owner}: it would have the owner's rights")
        cur.execute(
            """
            SELECT 'database ' || datname FROM pg_database WHERE datname = %(db)s AND datdba = %(oid)s
            UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = %(oid)s
            UNION ALL SELECT 'table ' || n.nspname || '.' || c.relname FROM pg_class c
                JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE c.relowner = %(oid)s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
            UNION ALL SELECT 'function ' || n.nspname || '.' || p.proname FROM pg_proc p
                JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proowner = %(oid)s
            ORDER BY 1
            """,
            {"db": database, "oid": _role_oid(cur, role)},
        )
        owned = [row[0] for row in cur.fetchall()]
        if owned:
            raise CommandError(
                f"role {role} owns {', '.join(owned[:10])}{' …' if len(owned) > 10 else ''}: the runtime role may "
                f"own nothing (ALTER … OWNER TO {owner}, or REASSIGN OWNED BY {role} TO {owner})"
            )

    def verify(self, cur, role: str) -> None:
        """Read the grants back: any privilege more or less than planned (through PUBLIC, or a role
        the runtime role is a member of) fails the command, and the transaction rolls back."""
        cur.execute("SELECT current_database(), current_schema()")
        database, schema = cur.fetchone()
        problems = []
        cur.execute(
            "SELECT has_schema_privilege(%s, %s, 'CREATE'), has_database_privilege(%s, %s, 'CREATE')",
            [role, schema, role, database],
        )
        schema_create, database_create = cur.fetchone()
        if schema_create:
            fix = f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC"
            problems.append(f"CREATE on schema {schema} (granted to PUBLIC? as the schema's owner: {fix})")
        if database_create:
            problems.append(f"CREATE on database {database}")
        parts = self.partitions(cur, schema)
        for name, kind in self.relations(cur, schema):
            if kind == "S":
                continue
            obj = f"{ident(schema)}.{ident(name)}"
            cur.execute(
                "SELECT " + ", ".join(f"has_table_privilege(%s, %s, '{p}')" for p in TABLE_PRIVILEGES),
                [v for _ in TABLE_PRIVILEGES for v in (role, obj)],
            )
            held = {p for p, on in zip(TABLE_PRIVILEGES, cur.fetchone(), strict=True) if on}
            wanted = set() if name in parts else set(privileges_of(name))
            if held != wanted:
                extra, missing = sorted(held - wanted), sorted(wanted - held)
                problems.append(f"{name}: has {extra or 'nothing extra'}, lacks {missing or 'nothing'}")
        if problems:
            raise CommandError(f"role {role} after the grants does not hold what it should: " + "; ".join(problems))


def _role_oid(cur, role: str) -> int:
    cur.execute("SELECT oid FROM pg_roles WHERE rolname = %s", [role])
    return cur.fetchone()[0]
