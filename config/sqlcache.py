"""Compiled SQL kept per shape: the ORM builds and compiles a hot query once, with stand-in
values; later calls send the same SQL with the real values, and build the model instances the
way the ORM's own iterable does (select_related rows, annotations, field converters).

A third to a half of a command's Python went into building and compiling the same few
queries (the lock with its visibility, candidacy, audit head and lists) on every call. The SQL
still comes from the ORM and the policy's own filters, so a model or policy change needs no
edit here; only the values differ from call to call.

How a value finds its place: the query is built with stand-ins (`Stand.value(name)`: negative
integers no real id can be, or a list holding one; `Stand.text(name)`: a string starting with a
control character no name holds, for a lookup by name), and each compiled parameter
equal to a stand-in becomes that name's slot (`Stand.time(name)`: a datetime in 1901, for a
cursor's position). Every other datetime parameter within an hour of the build is the clock
(`now`: role validity, follow-up), bound afresh on every call; one over a year off is a
constant (a far-future sort key), written into the text like the other constants; one in
between (a horizon such as now + 4 h) makes the shape unfit, as it would be frozen. A shape
whose stand-ins did not come through as parameters unchanged (one of them missing, or turned
into something else) is not kept, and the caller uses the ORM.

PostgreSQL only (the embedded SQLite default keeps the ORM path). Kept per process and shared by
its threads (`_TEMPLATES`); each connection prepares a statement once (`prepared_cursor`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import EmptyResultSet, ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connection
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import QuerySet
from django.db.models.query import get_related_populators
from django.utils import timezone

from config import tracing

try:
    from django.db.backends.postgresql.base import ServerBindingCursor
    from psycopg import sql as pgsql
    from psycopg._queries import PostgresQuery, _query2pg_nocache
except (ImportError, ImproperlyConfigured):  # no psycopg 3 (the embedded SQLite default needs none)
    ServerBindingCursor = object
    PostgresQuery = None

# Negative (no id sequence gives one) and inside a 32-bit integer column's range: Django drops a
# lookup whose value is out of its field's range (EmptyResultSet), which would change the SQL.
_BASE = -2_061_000_000
_SMALL_TOP = 32_767  # small stand-ins count down from the top of smallint (no priority is near it)
_MARK = str(-_BASE)[:5]  # a stand-in's digits, to catch one that was turned into text
_CLOCK = timedelta(hours=1)  # a datetime parameter this close to the build is the clock
_FAR = timedelta(days=366)  # one this far from it is a constant
_TIME_BASE = datetime(1901, 1, 1, tzinfo=UTC)  # time stand-ins: microseconds past it
_TEXT = "\x1fstand-in:"  # a text stand-in's start (a unit separator: no name or key holds one)


class Stand:
    """The stand-ins of one template build: `value(name)` an integer, `values(name, n)` n of
    them (name0 … name{n-1}), `array(name)` a list holding one (an array parameter)."""

    def __init__(self) -> None:
        self.by_value: dict[Any, str] = {}

    def value(self, name: str) -> int:
        v = _BASE - len(self.by_value)
        self.by_value[v] = name
        return v

    def values(self, name: str, n: int) -> list[int]:
        return [self.value(f"{name}{i}") for i in range(n)]

    def small(self, name: str) -> int:
        """An integer stand-in in a small integer column's range (0-32767), for a value compared
        with one (a priority, at most 100): Django proves a lookup out of the column's range
        empty, which would change the SQL."""
        v = _SMALL_TOP - len(self.by_value)
        self.by_value[v] = name
        return v

    def text(self, name: str) -> str:
        v = f"{_TEXT}{len(self.by_value)}"
        self.by_value[v] = name
        return v

    def time(self, name: str) -> datetime:
        v = _TIME_BASE + timedelta(microseconds=len(self.by_value))
        self.by_value[v] = name
        return v

    def array(self, name: str) -> list[int]:
        v = self.value(name)
        self.by_value[v] = f"[{name}]"
        return [v]


class Template:
    """One compiled SELECT and where its values go."""

    def __init__(self, queryset: QuerySet, stand: Stand) -> None:
        compiler = queryset.query.get_compiler(using=DEFAULT_DB_ALIAS)
        sql, params = compiler.as_sql()
        self.compiler = compiler
        slots: dict[int, str] = {}
        for i, p in enumerate(params):
            name = _slot(p, stand)
            if name is not None:
                slots[i] = name
            elif _MARK in repr(p) or _TEXT[1:] in repr(p):
                raise Unfit(f"a stand-in came through changed: {p!r}")
        missing = {n.strip("[]") for n in stand.by_value.values()} - {n.strip("[]") for n in slots.values()}
        if missing:
            raise Unfit(f"stand-ins not among the parameters: {sorted(missing)}")
        # Every other value is the same on every call (states, roles, flags): written into the
        # text, so the statement's one generic plan (DB_PLAN_CACHE_MODE) sees them as PostgreSQL
        # sees constants. A bound `state IN ($1, $2)` cannot prove a partial index's predicate:
        # the breach list's walk of the open items' due-date index became a sort of all of them.
        built = timezone.now()
        clock = {i for i, p in enumerate(params) if i not in slots and _time_kind(p, built) == "clock"}
        if any(_time_kind(p, built) == "near" for i, p in enumerate(params) if i not in slots):
            raise Unfit("a time near the clock but not it (a horizon such as now + 4 h) would be frozen")
        keep = set(slots) | clock
        self.sql, self.params, where = _inline(sql, list(params), keep)
        self.slots = [(where[i], name) for i, name in slots.items()]
        self.clock = [where[i] for i in sorted(clock)]
        select, klass_info = compiler.select, compiler.klass_info
        start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
        self.model = klass_info["model"]
        self.model_slice = slice(start, end)
        self.init_list = [f[0].target.attname for f in select[start:end]]
        self.annotation_col_map = compiler.annotation_col_map
        self.col_count = compiler.col_count if compiler.has_extra_select else None
        # What the ORM's iterable works out for every execution, worked out once: the columns'
        # converters and the select_related populators (a fifth of a fetch's Python).
        fields = [col[0] for col in select[0 : compiler.col_count]]
        self.converters = compiler.get_converters(fields)
        self.composite = compiler.has_composite_fields(fields)
        self.fields = fields
        self.populators = get_related_populators(klass_info, select, DEFAULT_DB_ALIAS)

    def bind(self, values: dict[str, Any]) -> list:
        params = list(self.params)
        now = values.get("now") or timezone.now()
        for i in self.clock:
            params[i] = now
        for i, name in self.slots:
            params[i] = values[name]
        return params

    def fetch(self, values: dict[str, Any]) -> list:
        """The model instances of the rows for `values` (each slot's name → its value)."""
        with prepared_cursor() as cur:
            cur.execute(self.sql, self.bind(values))
            rows = cur.fetchall()
        if self.col_count is not None:
            rows = [r[: self.col_count] for r in rows]
        compiler = self.compiler
        if self.converters:
            rows = compiler.apply_converters(rows, self.converters)
        if self.composite:
            rows = compiler.composite_fields_to_tuples(rows, self.fields)
        objs = []
        for row in rows:
            obj = self.model.from_db(DEFAULT_DB_ALIAS, self.init_list, row[self.model_slice])
            for populator in self.populators:
                populator.populate(row, obj)
            for attr, pos in self.annotation_col_map.items():
                setattr(obj, attr, row[pos])
            objs.append(obj)
        return objs


_PLACEHOLDER = re.compile(r"%%|%s")


def _inline(sql: str, params: list, keep: set[int]) -> tuple[str, list, dict[int, int]]:
    """`sql` with each parameter not in `keep` written in as a literal (psycopg's quoting, `%`
    doubled for the placeholder syntax); the kept parameters and where each went."""
    connection.ensure_connection()
    conn = connection.connection
    out: list = []
    where: dict[int, int] = {}
    position = iter(range(len(params)))

    def place(match: re.Match) -> str:
        if match.group() == "%%":
            return "%%"
        i = next(position)
        if i in keep:
            where[i] = len(out)
            out.append(params[i])
            return "%s"
        return pgsql.Literal(params[i]).as_string(conn).replace("%", "%%")

    text = _PLACEHOLDER.sub(place, sql)
    if next(position, None) is not None:
        raise Unfit("the SQL has fewer placeholders than parameters")
    return text, out, where


# psycopg turns a query's `%s` placeholders into `$1 …` on every execute, and caches the result
# only for a query under 4 kB with at most 50 parameters (its guard against ORM-made statements
# of ever-changing length). Ours are a few shapes each, longer than that (a lock with its
# joins and subqueries, a command's one write statement): converted once per process here.
_CONVERTED: dict[tuple[str | bytes, str], tuple] = {}
_CONVERTED_MAX = 2048  # shapes; past it a new one is converted per call, as psycopg would


if PostgresQuery is not None:

    class _KeptQuery(PostgresQuery):
        """psycopg's query conversion, its result kept per SQL text (see _CONVERTED)."""

        __slots__ = ()

        def convert(self, query, vars):
            if vars is None or not isinstance(query, str | bytes):
                return super().convert(query, vars)
            key = (query, self._tx.encoding)  # the text as given: no encoding on a hit
            kept = _CONVERTED.get(key)
            if kept is None:
                kept = _query2pg_nocache(self._ensure_bytes(query), self._tx.encoding)
                if len(_CONVERTED) < _CONVERTED_MAX:
                    _CONVERTED[key] = kept
            self.query, self._want_formats, self._order, self._parts = kept
            self.dump(vars)


class _Prepared(ServerBindingCursor):
    """psycopg 3's server-side binding, each statement prepared (once per connection)."""

    if PostgresQuery is not None:
        _query_cls = _KeptQuery

    def execute(self, query, params=None, **kwargs):
        with tracing.sql_span(query, self.connection.info):
            return super().execute(query, params, prepare=True)


class _PreparedDebug(CursorDebugWrapper):
    """Django's query log for a prepared statement: its SQL as sent (with `%s` placeholders).
    Django asks the cursor for the query it executed, which psycopg does not keep for a
    prepared one: the log held None."""

    def execute(self, sql, params=None):
        with self.debug_sql(sql, params):
            return super(CursorDebugWrapper, self).execute(sql, params)  # the wrappers, not the log twice


def prepared_cursor(conn=None):
    """A cursor whose statements PostgreSQL parses and plans once per connection (psycopg 3
    server-side binding, a named prepared statement per SQL text), when the connection has
    prepared statements on (settings: DB_PREPARED_STATEMENTS, OPTIONS prepare_threshold; off
    behind a pooler in transaction mode that does not keep them, e.g. PgBouncer before 1.21).
    Otherwise, or off psycopg 3, the connection's ordinary cursor. Wrapped like any Django
    cursor (execute wrappers, query logging, error translation). `conn`: a Django connection
    (a replica's for a reporting read), the default one if None."""
    conn = conn or connection
    if conn.vendor != "postgresql":
        return conn.cursor()
    conn.ensure_connection()
    raw = conn.connection
    if ServerBindingCursor is object or getattr(raw, "prepare_threshold", None) is None:
        return conn.cursor()
    cursor = _Prepared(raw)
    return _PreparedDebug(cursor, conn) if conn.queries_logged else conn.make_cursor(cursor)


class Unfit(Exception):
    """The query's values do not come through as plain parameters: use the ORM for it."""


def _time_kind(p: Any, built: datetime) -> str | None:
    """ "clock" for a datetime within an hour of the build, "constant" for one over a year
    away (a far-future sort key), "near" for any other (unfit), None for what is no datetime."""
    if not isinstance(p, datetime):
        return None
    if p.tzinfo is None:
        return "near"
    off = abs(p - built)
    return "clock" if off < _CLOCK else "constant" if off > _FAR else "near"


def _slot(p: Any, stand: Stand) -> str | None:
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], int) and not isinstance(p[0], bool):
        name = stand.by_value.get(p[0])
        return name.strip("[]") if name and name.startswith("[") else None
    if isinstance(p, str | datetime) or (isinstance(p, int) and not isinstance(p, bool)):
        name = stand.by_value.get(p)
        return name if name and not name.startswith("[") else None
    return None


_UNFIT = object()


# The templates of the process, by database alias and shape. A template is the SQL text and
# what the ORM works out to read its rows: nothing of the connection it was built on is used
# again (its converters take a connection argument none of them reads on PostgreSQL), so every
# thread's connection shares it; each connection prepares the statement itself (psycopg, by
# its text). Kept per connection before, a gthread worker built each shape once per thread:
# twenty times the compiling and the memory, spread over its first requests.
_TEMPLATES: dict[tuple[str, Hashable], Template | object] = {}


def template(key: Hashable, build: Callable[[Stand], QuerySet]) -> Template | None:
    """The template of the shape `key`, built by `build(stand)` the first time in this process;
    None off PostgreSQL or when the shape is unfit (then use the ORM). Two threads that build
    the same shape at once both build it; one of the two is kept."""
    if connection.vendor != "postgresql":
        return None
    found = _TEMPLATES.get((connection.alias, key))
    if found is None:
        stand = Stand()
        try:
            found = Template(build(stand), stand)
        except (Unfit, EmptyResultSet):  # a shape Django proves empty when compiling: the ORM's
            found = _UNFIT
        found = _TEMPLATES.setdefault((connection.alias, key), found)
    return None if found is _UNFIT else found


def templates() -> dict[Hashable, Template | None]:
    """The shapes kept for the default database: each template, or None for an unfit shape."""
    return {k: (None if v is _UNFIT else v) for (alias, k), v in list(_TEMPLATES.items()) if alias == DEFAULT_DB_ALIAS}
