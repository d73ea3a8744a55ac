"""Counting the SQL statements a piece of code sends (the statement budget of each command).

`count_statements()` installs an execute wrapper on the connection: every statement the
code sends goes through it, classified by its verb and first table. Transaction control
(BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) is kept apart and not counted: a command's
budget is the work it asks of the database, not the shape of the test's transaction.
Work a trigger does inside PostgreSQL is no statement of ours and is not seen here.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection

_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|START TRANSACTION)\b", re.I)
_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?([a-z_][a-z0-9_]*)"?', re.I)


def classify(sql: str) -> str:
    """`SELECT workitems_workitem`, `INSERT audit_auditrecord`, `WITH …`: verb and first table."""
    verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    table = _TABLE.search(sql)
    return f"{verb} {table.group(1) if table else ''}".strip()


@dataclass
class Statements:
    """The statements seen: `counted` (the budget's) and `control` (transaction control)."""

    counted: list[str] = field(default_factory=list)
    control: list[str] = field(default_factory=list)

    def __call__(self, execute, sql, params, many, context):
        (self.control if _CONTROL.match(sql) else self.counted).append(sql)
        return execute(sql, params, many, context)

    def __len__(self) -> int:
        return len(self.counted)

    def kinds(self) -> list[str]:
        return [classify(sql) for sql in self.counted]

    def report(self, title: str = "") -> str:
        lines = [f"{title}: {len(self.counted)} statements" if title else f"{len(self.counted)} statements"]
        lines += [f"  {i:2}. {sql[:300]}" for i, sql in enumerate(self.counted, 1)]
        return "\n".join(lines)


@contextmanager
def count_statements(conn=connection):
    """`with count_statements() as seen: …` then `len(seen)`, `seen.report()`."""
    seen = Statements()
    with conn.execute_wrapper(seen):
        yield seen
