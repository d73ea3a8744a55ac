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
        with connection.cursor() as cur:
            if connection.vendor != "postgresql":  # the embedded SQLite default has no writes in WITH
                for sql, params in self.parts:
                    cur.execute(sql, params)
            else:
                cur.execute(*self.sql())
            return cur.fetchall() if cur.description else []


def insert_sql(
    model: type[Model],
    objs: list[Model],
    *,
    returning: Iterable[str] = (),
    unique_fields: Iterable[str] = (),
    update_fields: Iterable[str] = (),
) -> tuple[str, tuple]:
    """The INSERT `Model.save()` / `bulk_create` would send for `objs` (an `ON CONFLICT (unique)
    DO UPDATE SET update_fields` when given), with `RETURNING` the named fields."""
    opts = model._meta
    fields = [f for f in opts.local_concrete_fields if not f.generated and not (f.primary_key and f.db_returning)]
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
    return sql, params


def update_sql(model: type[Model], values: dict, **where) -> tuple[str, tuple]:
    """`Model.objects.filter(**where).update(**values)` as SQL."""
    query = UpdateQuery(model)
    query.add_update_values(values)
    query.add_q(Q(**where))
    return query.get_compiler(connection=connection).as_sql()
