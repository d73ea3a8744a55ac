"""Several writes as ONE SQL statement: the ORM's own INSERT and UPDATE, compiled, joined as
data-modifying CTEs (`WITH s0 AS (INSERT …), s1 AS (UPDATE …) INSERT …`).

A command's audit record, chain head and outbox event are three writes; sent one by one they
are three round trips. PostgreSQL runs every data-modifying CTE of a statement exactly once
and to completion, in the caller's transaction, with the constraints and triggers of each
table applying as they would to the separate statements. The SQL comes from Django's own
compilers (field preparation, defaults, `ON CONFLICT`), so a model change needs no SQL edit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Model, Q
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery, UpdateQuery

from config import sqlcache


@dataclass
class Batch:
    """Writes collected for one statement; `run()` sends them (the last one's RETURNING rows back)."""

    parts: list[tuple[str, tuple]] = field(default_factory=list)

    def add(self, sql: str, params: Sequence = ()) -> None:
        self.parts.append((sql, tuple(params)))

    def insert(self, model: type[Model], objs: list[Model], *, returning: Iterable[str] = (), **conflict) -> None:
        self.add(*insert_sql(model, objs, returning=returning, **conflict))

    def update(self, model: type[Model], values: dict, **where) -> None:
        self.add(*update_sql(model, values, **where))

    def sql(self) -> tuple[str, tuple]:
        *withs, (last_sql, last_params) = self.parts
        if not withs:
            return last_sql, last_params
        ctes = ", ".join(f"s{i} AS ({sql})" for i, (sql, _) in enumerate(withs))
        params = tuple(p for _, ps in withs for p in ps) + last_params
        return f"WITH {ctes} {last_sql}", params

    def run(self) -> list[tuple]:
        if not self.parts:
            return []
        if connection.vendor != "postgresql":  # the embedded SQLite default has no writes in WITH
            with connection.cursor() as cur:
                for sql, params in self.parts:
                    cur.execute(sql, params)
                return cur.fetchall() if cur.description else []
        # Prepared: a command's writes are a few shapes, each parsed and planned once per
        # connection (sent as text, PostgreSQL parsed a create's 6 kB statement on every call).
        with sqlcache.prepared_cursor() as cur:
            cur.execute(*self.sql())
            return cur.fetchall() if cur.description else []


# The SQL of an INSERT or UPDATE of plain values depends only on its shape (the model, the rows'
# count, the columns, ON CONFLICT and RETURNING): compiled once per shape and database vendor,
# and afterwards only the values are prepared, by the same field methods the compiler calls.
_SQL: dict[tuple, str] = {}


def _plain(value) -> bool:
    """A value the compiler sends as a `%s` parameter (not an expression, not a model instance)."""
    return not hasattr(value, "resolve_expression") and not hasattr(value, "prepare_database_save")


def _insert_fields(model: type[Model], with_pk: bool) -> list:
    """The columns of the INSERT: the auto id only when the rows carry one (as Model.save())."""
    return [
        f
        for f in model._meta.local_concrete_fields
        if not f.generated and not (f.primary_key and f.db_returning and not with_pk)
    ]


def insert_sql(
    model: type[Model],
    objs: list[Model],
    *,
    returning: Iterable[str] = (),
    unique_fields: Iterable[str] = (),
    update_fields: Iterable[str] = (),
) -> tuple[str, tuple]:
    """The INSERT `Model.save()` / `bulk_create` would send for `objs` (an `ON CONFLICT (unique)
    DO UPDATE SET update_fields` when given), with `RETURNING` the named fields. Rows that all
    carry their id (one reserved from the sequence) are inserted with it."""
    opts = model._meta
    with_pk = all(obj.pk is not None for obj in objs)
    fields = _insert_fields(model, with_pk)
    key = (
        "insert",
        model,
        with_pk,
        len(objs),
        tuple(returning),
        tuple(unique_fields),
        tuple(update_fields),
        connection.vendor,
    )
    sql = _SQL.get(key)
    if sql is not None:
        # What SQLInsertCompiler.as_sql does for each value: pre_save (auto_now, defaults), then
        # get_db_prep_save.
        values = [f.pre_save(obj, add=True) for obj in objs for f in fields]
        if all(_plain(v) for v in values):
            return sql, tuple(
                f.get_db_prep_save(v, connection) for f, v in zip(fields * len(objs), values, strict=True)
            )
    unique = [opts.get_field(name) for name in unique_fields]
    updates = [opts.get_field(name) for name in update_fields]
    query = InsertQuery(
        model,
        on_conflict=OnConflict.UPDATE if updates else None,
        update_fields=updates,
        unique_fields=unique,
    )
    query.insert_values(fields, objs)
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [opts.get_field(name) for name in returning] or None
    (sql, params), *rest = compiler.as_sql()
    assert not rest, "one INSERT statement per batch part"
    plain = all(_plain(getattr(obj, f.attname)) for obj in objs for f in fields)
    if plain and not any(hasattr(f, "get_placeholder") for f in fields) and len(params) == len(fields) * len(objs):
        _SQL[key] = sql
    return sql, params


def update_sql(model: type[Model], values: dict, **where) -> tuple[str, tuple]:
    """`Model.objects.filter(**where).update(**values)` as SQL."""
    key = ("update", model, tuple(values), tuple(where), connection.vendor)
    sql = _SQL.get(key)
    if sql is not None and list(where) == ["pk"] and all(_plain(v) for v in values.values()):
        opts = model._meta
        params = [opts.get_field(name).get_db_prep_save(v, connection) for name, v in values.items()]
        return sql, (*params, opts.pk.get_db_prep_value(opts.pk.get_prep_value(where["pk"]), connection))
    query = UpdateQuery(model)
    query.add_update_values(values)
    query.add_q(Q(**where))
    sql, params = query.get_compiler(connection=connection).as_sql()
    fields = [model._meta.get_field(name) for name in values]
    if (
        list(where) == ["pk"]
        and all(_plain(v) for v in values.values())
        and not any(hasattr(f, "get_placeholder") for f in fields)
        and len(params) == len(values) + 1
    ):
        _SQL[key] = sql
    return sql, params
