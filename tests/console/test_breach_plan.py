"""The breach list's statement, as PostgreSQL runs it (prepared, one generic plan), walks the
open items' due-date index (wi_open_due_idx) and stops at the list's size. With its states bound
as parameters the generic plan could not prove the partial index's predicate and sorted every
open item: 514 ms a fragment at a million open items (bench/console.py)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from psycopg import ClientCursor

from console import dashboard
from tests import factories
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db


def test_the_breach_lists_generic_plan_walks_the_due_date_index(db):
    svc = factories.user("bp-svc", roles=["service"])
    queue = factories.queue("bp-queue")
    item = factories.item(actor=svc, queue=queue)
    WorkItem.objects.filter(pk=item.pk).update(sla_state="at_risk")
    factories.copies(item, 20_000, vary={"due_at": "now() + g * interval '1 minute'"})
    ids = [queue.pk]
    template = dashboard.sqlcache.template(
        ("console-breaches", len(ids)),
        lambda stand: dashboard._breach_query(None, stand.values("q", len(ids)))[: dashboard.BREACH_LIST_SIZE],
    )
    assert template is not None
    params = template.bind({"q0": queue.pk})
    numbered = iter(range(1, len(params) + 1))
    text = re.sub(r"%%|%s", lambda m: "%" if m.group() == "%%" else f"${next(numbered)}", template.sql)
    values = ", ".join(ClientCursor(connection.connection).mogrify("%s", [p]) for p in params)
    with connection.cursor() as cur:
        cur.execute("SHOW plan_cache_mode")
        assert cur.fetchone()[0] == "force_generic_plan"
        cur.execute(f"PREPARE breach_plan AS {text}")
        try:
            cur.execute(f"EXPLAIN EXECUTE breach_plan({values})")
            plan = "\n".join(row[0] for row in cur.fetchall())
        finally:
            cur.execute("DEALLOCATE breach_plan")
    assert "wi_open_due_idx" in plan, plan
    # no sort of every open item above the walk (an incremental sort of equal due dates stops at the limit)
    assert not re.search(r"(?<!Incremental )Sort  \(", plan), plan
