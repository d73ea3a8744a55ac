"""Reporting reads against a real streaming replica (config/db_router.py; README "Read replicas").

The standby is a `pg_basebackup -R` of the test primary on a port of its own (conftest.py).
Which server a query went to is read from each connection's captured statements; the tests
commit (transaction=True) so that what they write reaches the replica by streaming."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack

import pytest
from django.db import connections, transaction
from django.http import HttpResponse
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from config import db_router
from config.db_router import FreshReadsMiddleware, read_alias, reporting, request_scope
from console import figures
from stats import selectors
from tests import factories
from tests.api.conftest import isolated_cache  # noqa: F401 - a fixture (this test's own cache keys)
from tests.integration.conftest import REPLICA, UNREACHABLE, wait_for_replica
from tests.querycount import count_statements
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", REPLICA, UNREACHABLE])
MAX_LAG = 3  # seconds, for these tests


@pytest.fixture(autouse=True)
def routed(replica_alias, unreachable_alias, settings):
    """Reporting reads may go to the standby, at most MAX_LAG seconds behind; a cache of our own."""
    settings.DATABASE_REPLICAS = [replica_alias]
    settings.DATABASE_REPLICA_MAX_LAG = MAX_LAG
    caches = {name: dict(conf) for name, conf in settings.CACHES.items()}
    caches["default"]["KEY_PREFIX"] = f"replicatest-{uuid.uuid4().hex}"
    settings.CACHES = caches
    db_router.forget()
    yield
    db_router.forget()


class Captured:
    """The statements each server received inside the block: an execute wrapper on each
    connection (tests/querycount.py) sees the SQL text of every statement, the prepared ones
    of config.sqlcache too (Django's query log records those as None)."""

    def __enter__(self):
        self._stack = ExitStack()
        self._seen = {
            alias: self._stack.enter_context(count_statements(connections[alias])) for alias in ("default", REPLICA)
        }
        return self

    def __exit__(self, *exc):
        self._stack.__exit__(*exc)

    def sql(self, alias: str) -> list[str]:
        return list(self._seen[alias].counted)

    def touched(self, alias: str, table: str) -> bool:
        return any(table in sql for sql in self.sql(alias))


def _replica_value(sql: str, params=()):
    with connections[REPLICA].cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


@pytest.fixture
def scene(svc, sam, queue):
    items = [factories.item(actor=svc, queue=queue) for _ in range(3)]
    wait_for_replica()
    return {"queue": queue, "items": items, "sam": sam}


def test_the_replica_is_a_streaming_standby_of_the_test_database(standby):
    assert _replica_value("SELECT pg_is_in_recovery()") is True
    assert _replica_value("SELECT inet_server_port()") == standby.port != 5432
    assert _replica_value("SELECT current_database()") == connections["default"].settings_dict["NAME"]
    assert _replica_value("SELECT status FROM pg_stat_wal_receiver") == "streaming"


def test_the_statistics_endpoints_read_from_the_replica(scene):
    api = APIClient()
    api.force_authenticate(scene["sam"])
    paths = [
        "/api/v1/stats/queues",
        f"/api/v1/queues/{scene['queue'].name}/stats",
        "/api/v1/stats/users",
        "/api/v1/stats/timeseries?metric=created",
    ]
    for path in paths:
        with Captured() as seen:
            response = api.get(path)
        assert response.status_code == 200, (path, response.content)
        assert seen.touched(REPLICA, "stats_"), path
        assert not seen.touched("default", "stats_"), (path, seen.sql("default"))
    # what the replica answered is the primary's truth (it had caught up)
    assert api.get("/api/v1/stats/queues").json()[0]["open"] == 3


def test_the_audit_search_reads_from_the_replica(scene):
    api = APIClient()
    api.force_authenticate(scene["sam"])
    item = scene["items"][0]
    with Captured() as seen:
        response = api.get(f"/api/v1/audit?work_item={item.pk}")
    assert response.status_code == 200
    assert [r["action"] for r in response.json()["results"]] == ["create"]
    assert seen.touched(REPLICA, "audit_auditrecord")
    assert not seen.touched("default", "audit_auditrecord")
    # the access log's record of this request is written on the primary, after the answer
    assert any(sql.startswith("INSERT") and "audit_accessrecord" in sql for sql in seen.sql("default"))


@pytest.mark.usefixtures("isolated_cache")
def test_the_dashboard_figures_read_from_the_replica_and_the_breach_list_from_the_primary(scene):
    client = Client()
    client.force_login(scene["sam"], backend="django.contrib.auth.backends.ModelBackend")
    with Captured() as seen:
        response = client.get("/console/")
    assert response.status_code == 200
    assert seen.touched(REPLICA, "stats_queuecounter")
    assert not seen.touched("default", "stats_")
    assert seen.touched("default", "workitems_workitem")  # the breach list: a list to act on
    time.sleep(figures.FIGURES_TTL + 0.1)  # the figures are shared for a moment (console.figures): read afresh
    with Captured() as seen:
        response = client.get(f"/console/queues/{scene['queue'].name}/live")
    assert response.status_code == 200
    assert seen.touched(REPLICA, "stats_queuecounter") and not seen.touched("default", "stats_queuecounter")


def test_orm_reads_marked_reporting_go_to_the_replica_and_others_to_the_primary(scene):
    queue = scene["queue"]
    with request_scope():
        with Captured() as seen, reporting():
            assert WorkItem.objects.filter(queue=queue).count() == 3
        assert seen.touched(REPLICA, "workitems_workitem") and not seen.touched("default", "workitems_workitem")
        with Captured() as seen:
            assert WorkItem.objects.filter(queue=queue).count() == 3
        assert seen.touched("default", "workitems_workitem") and not seen.sql(REPLICA)


def test_reads_inside_a_transaction_go_to_the_primary(scene):
    queue = scene["queue"]
    with request_scope(), Captured() as seen, transaction.atomic(), reporting():
        assert read_alias() == "default"
        assert WorkItem.objects.filter(queue=queue).count() == 3
        selectors.queue_figures([queue.pk])
    assert not seen.sql(REPLICA)
    assert seen.touched("default", "workitems_workitem") and seen.touched("default", "stats_queuecounter")


def test_read_your_writes_within_a_request(scene, svc):
    queue = scene["queue"]
    seen_in = {}

    def view(request):
        with reporting():
            seen_in["before the write"] = read_alias()
        factories.item(actor=svc, queue=queue)  # a command, committed
        with Captured() as seen, reporting():
            seen_in["after the write"] = read_alias()
            seen_in["open"] = selectors.queue_figures([queue.pk])[queue.pk]["open"]
        seen_in["replica statements"] = seen.sql(REPLICA)
        return HttpResponse()

    middleware = FreshReadsMiddleware(view)
    middleware(RequestFactory().get("/"))
    assert seen_in["before the write"] == REPLICA
    assert seen_in["after the write"] == "default" and seen_in["replica statements"] == []
    assert seen_in["open"] == 4  # its own write, whatever the replica has replayed
    # the next request is a scope of its own; a command (POST) reads from the primary throughout
    middleware(RequestFactory().get("/"))
    assert seen_in["before the write"] == REPLICA
    middleware(RequestFactory().post("/"))
    assert seen_in["before the write"] == "default"


def test_a_replica_past_the_maximum_lag_is_left_for_the_primary(scene, svc):
    queue, api = scene["queue"], APIClient()
    api.force_authenticate(scene["sam"])
    started = time.monotonic()
    factories.item(actor=svc, queue=queue)  # a transaction the replica replays just before it pauses
    wait_for_replica()
    _replica_value("SELECT pg_wal_replay_pause()")
    try:
        deadline = time.monotonic() + 10
        while _replica_value("SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "replay did not pause"
            time.sleep(0.05)
        paused_at = time.monotonic()
        fresh = factories.item(actor=svc, queue=queue)
        assert _replica_value("SELECT count(*) FROM workitems_workitem WHERE id = %s", [fresh.pk]) == 0

        # within the maximum lag the replica serves, and shows what it had (4 open, not 5)
        db_router.forget()
        with Captured() as seen:
            figures = api.get("/api/v1/stats/queues").json()
        elapsed = time.monotonic() - started
        assert elapsed < MAX_LAG, f"the machine took {elapsed:.1f} s: the replica was past the lag already"
        assert figures[0]["open"] == 4 and seen.touched(REPLICA, "stats_queuecounter")

        # past it the primary answers, with the new item (forget(): measure now, not a second later)
        time.sleep(max(0.0, MAX_LAG + 0.5 - (time.monotonic() - paused_at)))
        db_router.forget()
        with Captured() as seen:
            assert api.get("/api/v1/stats/queues").json()[0]["open"] == 5
        assert seen.touched("default", "stats_queuecounter") and not seen.touched(REPLICA, "stats_queuecounter")
        assert db_router.lag(REPLICA) > MAX_LAG
    finally:
        _replica_value("SELECT pg_wal_replay_resume()")

    wait_for_replica()
    db_router.forget()
    with Captured() as seen:
        assert api.get("/api/v1/stats/queues").json()[0]["open"] == 5
    assert seen.touched(REPLICA, "stats_queuecounter")


def test_a_caught_up_replica_serves_however_long_ago_its_last_transaction(scene):
    """An idle primary is no lag: the replica has replayed the primary's current WAL position."""
    time.sleep(MAX_LAG + 0.5)  # nothing written by us meanwhile
    wait_for_replica()
    db_router.forget()
    assert db_router.lag(REPLICA) <= MAX_LAG
    with request_scope(), reporting():
        assert read_alias() == REPLICA


def test_an_unreachable_replica_is_left_out(scene, settings):
    settings.DATABASE_REPLICAS = [UNREACHABLE]
    with request_scope(), reporting():
        assert read_alias() == "default"
        assert selectors.queue_figures([scene["queue"].pk])[scene["queue"].pk]["open"] == 3
    assert db_router.lag(UNREACHABLE) is None
    settings.DATABASE_REPLICAS = [UNREACHABLE, REPLICA]
    with request_scope(), reporting():
        assert {read_alias() for _ in range(20)} == {REPLICA}
