"""claim-next's lock reads the walk's few ids by primary key at any size: the statement's plan
scans no work-item table (a regression from a semi-join placed after the lock's seven joins made
PostgreSQL hash-join every OFFERED row first: 2.5 s a call at a million open items)."""

from __future__ import annotations

import re

import pytest
from django.db import connection, transaction
from psycopg import ClientCursor

from tests import factories
from workitems import services

pytestmark = pytest.mark.django_db

ROWS = 20_000
# The lock's own read of the item table (unaliased; the walk's reads are aliased w, w_1).
SEQ_SCAN = re.compile(r"Seq Scan on workitems_workitem\s+\(")


def _lock_statement(actor, **kwargs) -> str:
    seen = []

    def capture(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture), transaction.atomic():
        services.work_item_claim_next(actor=actor, **kwargs)
        transaction.set_rollback(True)
    (sql, params), *_ = [(s, p) for s, p in seen if "SKIP LOCKED" in s]
    return ClientCursor(connection.connection).mogrify(sql, params)


@pytest.mark.parametrize("kwargs", [{}, {"queues": ["plan-a", "plan-b"]}], ids=["one-walk", "scored"])
def test_the_lock_reads_no_work_item_table_by_scanning_it(svc, alice, team_a, kwargs):
    a = factories.queue("plan-a", groups=[team_a])
    factories.queue("plan-b", groups=[team_a])
    factories.copies(factories.item(actor=svc, queue=a), ROWS)
    sql = _lock_statement(alice, **kwargs)
    with connection.cursor() as cur:
        cur.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cur.fetchall())
    assert not SEQ_SCAN.search(plan), plan
    assert "workitems_workitem_pkey" in plan, plan
