"""Transient database conflicts are retried server-side (config.retry) around the outermost
transaction: the API view (also under Idempotency-Key), the inbound bus and the Celery sweeps.

The conflicts are PostgreSQL's own: a real deadlock between two concurrent requests locking
two items in opposite order, a real lock timeout behind a row lock held by another
connection, and for the other SQLSTATEs a trigger that makes the UPDATE of a work item fail
with that code (raised by the server, classified by the code the driver reports).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from api.models import IdempotencyRecord
from audit.models import AuditRecord
from config import retry
from config.wsconfig import ConfigError
from events import inbound
from events.models import InboxCommand
from tests import factories
from workitems import services, tasks
from workitems.models import State, WorkItem

pytestmark = pytest.mark.django_db(transaction=True)

TRANSIENT = ["40P01", "40001", "55P03"]


def counted(counter, where: str, sqlstate: str) -> float:
    """The counter's value for the labels (read from the counter itself: a registry-wide read
    would also run the collectors that query the database)."""
    for family in counter.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels == {"where": where, "sqlstate": sqlstate}:
                return sample.value
    return 0.0


class Counters:
    """The retry and give-up counters of one (where, sqlstate), as deltas since it was made."""

    def __init__(self, where: str, sqlstate: str):
        self.where, self.sqlstate = where, sqlstate
        self.retries0 = counted(retry.TRANSIENT_RETRIES_TOTAL, where, sqlstate)
        self.exhausted0 = counted(retry.TRANSIENT_EXHAUSTED_TOTAL, where, sqlstate)

    @property
    def retries(self) -> float:
        return counted(retry.TRANSIENT_RETRIES_TOTAL, self.where, self.sqlstate) - self.retries0

    @property
    def exhausted(self) -> float:
        return counted(retry.TRANSIENT_EXHAUSTED_TOTAL, self.where, self.sqlstate) - self.exhausted0


def _sql(statement: str, params=None):
    with connection.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchone() if cur.description else None


@pytest.fixture
def fault(transactional_db):
    """`fault(sqlstate, times)`: the next `times` UPDATEs of a work item fail with `sqlstate`,
    raised by PostgreSQL (a trigger); `fault.fires()` says how many UPDATEs it saw."""

    class Fault:
        def __call__(self, sqlstate: str, times: int) -> None:
            assert sqlstate.isalnum() and len(sqlstate) == 5
            _sql("CREATE SEQUENCE ws_test_fault_seq")
            _sql(
                f"""
                CREATE FUNCTION ws_test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF nextval('ws_test_fault_seq') <= {int(times)} THEN
                    RAISE EXCEPTION 'injected by the test' USING ERRCODE = '{sqlstate}';
                  END IF;
                  RETURN NEW;
                END $$"""
            )
            _sql(
                "CREATE TRIGGER ws_test_fault BEFORE UPDATE ON workitems_workitem "
                "FOR EACH ROW EXECUTE FUNCTION ws_test_fault()"
            )

        def fires(self) -> int:  # a sequence is not rolled back with the failed attempt
            return _sql("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM ws_test_fault_seq")[0]

    yield Fault()
    _sql("DROP TRIGGER IF EXISTS ws_test_fault ON workitems_workitem")
    _sql("DROP FUNCTION IF EXISTS ws_test_fault()")
    _sql("DROP SEQUENCE IF EXISTS ws_test_fault_seq")


def _claim(api, user, item, **headers):
    return api(user).post(f"/api/v1/workitems/{item.pk}/claim", format="json", headers=headers)


def _untouched(item) -> None:
    item.refresh_from_db()
    assert item.state == State.OFFERED and item.version == 1 and item.assignee_id is None
    assert not AuditRecord.objects.filter(work_item_id=item.pk, action="claim").exists()


# --- the API view ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sqlstate", TRANSIENT)
def test_a_transient_conflict_is_retried_and_the_request_succeeds(fault, api, alice, make_item, sqlstate):
    item = make_item()
    fault(sqlstate, times=1)
    counters = Counters("api", sqlstate)
    resp = _claim(api, alice, item)
    assert resp.status_code == 200, resp.content
    assert resp.json()["assignee"] == "alice" and resp.json()["version"] == 2
    assert fault.fires() == 2  # the failed attempt, then the one that went through
    assert counters.retries == 1 and counters.exhausted == 0
    assert AuditRecord.objects.filter(work_item_id=item.pk, action="claim").count() == 1  # applied once


@pytest.mark.parametrize("sqlstate", TRANSIENT)
def test_after_the_last_attempt_the_client_gets_503_transient_conflict(fault, api, alice, make_item, sqlstate):
    item = make_item()
    fault(sqlstate, times=100)
    counters = Counters("api", sqlstate)
    resp = _claim(api, alice, item)
    assert resp.status_code == 503, resp.content
    assert resp["Content-Type"] == "application/problem+json"
    assert resp["Retry-After"] == "1"
    body = resp.json()
    assert body["type"] == "https://workstream.dev/problems/transient-conflict"
    assert body["sqlstate"] == sqlstate and body["instance"] == f"/api/v1/workitems/{item.pk}/claim"
    assert retry.TRANSIENT_SQLSTATES[sqlstate] in body["detail"] and "3 attempt" in body["detail"]
    assert fault.fires() == 3  # performance.transientRetries = 2: three attempts in all
    assert counters.retries == 2 and counters.exhausted == 1
    _untouched(item)


@pytest.mark.parametrize(("retries", "failures", "status"), [(0, 1, 503), (4, 4, 200), (4, 5, 503), (1, 1, 200)])
def test_the_number_of_attempts_is_configured(ws_config, fault, api, alice, make_item, retries, failures, status):
    ws_config({"performance": {"transientRetries": retries}})
    item = make_item()
    fault("40001", times=failures)
    assert _claim(api, alice, item).status_code == status
    assert fault.fires() == min(failures + 1, retries + 1)


@pytest.mark.parametrize("value", [-1, 11, "3", 1.5, None])
def test_a_bad_transient_retries_setting_is_named(ws_config, value):
    with pytest.raises(ConfigError, match="performance.transientRetries"):
        ws_config({"performance": {"transientRetries": value}})


@pytest.mark.parametrize("if_match", ['"7"', '"0"', 'W/"1"', '"1", "2"'])
def test_a_stale_if_match_is_412_at_once_and_never_retried(fault, api, alice, make_item, if_match):
    item = make_item()
    fault("40001", times=100)
    counters = [Counters("api", s) for s in TRANSIENT]
    t0 = time.monotonic()
    resp = _claim(api, alice, item, **{"If-Match": if_match})
    assert resp.status_code == 412, resp.content
    assert resp.json()["type"].endswith("/stale-version")
    assert fault.fires() == 0  # refused before any write: nothing to retry
    assert all(c.retries == 0 and c.exhausted == 0 for c in counters)
    assert time.monotonic() - t0 < 2
    _untouched(item)


def test_other_database_errors_are_not_retried(fault, api, alice, make_item):
    item = make_item()
    fault("P0001", times=100)  # raise_exception: a plain error, not a transient conflict
    resp = _claim(api, alice, item)
    assert resp.status_code == 500
    assert fault.fires() == 1
    _untouched(item)


def test_under_idempotency_key_the_whole_transaction_is_retried_and_stored_once(fault, api, alice, make_item):
    item = make_item()
    fault("40P01", times=1)
    counters = Counters("api", "40P01")
    first = _claim(api, alice, item, **{"Idempotency-Key": "retry-me"})
    assert first.status_code == 200, first.content
    assert counters.retries == 1
    again = _claim(api, alice, item, **{"Idempotency-Key": "retry-me"})
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert IdempotencyRecord.objects.count() == 1
    assert AuditRecord.objects.filter(work_item_id=item.pk, action="claim").count() == 1


def test_a_retried_request_counts_once_against_the_rate_limit(ws_config, fault, api, alice, make_item):
    ws_config({"rateLimits": {"default": "2/min"}})
    items = [make_item(), make_item()]
    fault("40001", times=2)
    assert _claim(api, alice, items[0]).status_code == 200  # three attempts, one request
    assert _claim(api, alice, items[1]).status_code == 200
    assert _claim(api, alice, items[1]).status_code == 429


def test_a_real_deadlock_between_two_requests_is_retried_and_both_succeed(api, alice, carol, make_item):
    """Two claims, each of whose UPDATE then locks the other item (a trigger: as a command that
    locks two rows would), in opposite order: PostgreSQL aborts one with 40P01, the server runs
    it again, and both callers get 200."""
    a, b = make_item(), make_item()
    _sql(
        f"""
        CREATE FUNCTION ws_test_lock_partner() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM pg_sleep(0.3);  -- both requests hold their first row by now
          PERFORM 1 FROM workitems_workitem
            WHERE id = CASE WHEN NEW.id = {a.pk} THEN {b.pk} ELSE {a.pk} END FOR UPDATE;
          RETURN NEW;
        END $$"""
    )
    _sql(
        "CREATE TRIGGER ws_test_lock_partner BEFORE UPDATE ON workitems_workitem "
        f"FOR EACH ROW WHEN (NEW.id IN ({a.pk}, {b.pk})) EXECUTE FUNCTION ws_test_lock_partner()"
    )
    counters = Counters("api", "40P01")
    start = threading.Barrier(2)
    answers = {}

    def claim(user, item):
        try:
            start.wait(timeout=10)
            answers[user.username] = _claim(api, user, item)
        finally:
            connection.close()

    try:
        threads = [threading.Thread(target=claim, args=args) for args in ((alice, a), (carol, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
    finally:
        _sql("DROP TRIGGER IF EXISTS ws_test_lock_partner ON workitems_workitem")
        _sql("DROP FUNCTION IF EXISTS ws_test_lock_partner()")
    assert {name: r.status_code for name, r in answers.items()} == {"alice": 200, "carol": 200}
    assert counters.retries == 1 and counters.exhausted == 0  # one of them lost the deadlock, once
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.assignee, a.version, b.assignee, b.version) == (alice, 2, carol, 2)


@pytest.fixture
def row_lock(transactional_db):
    """`row_lock(item)`: another connection holds the item's row lock until `.release()`."""
    params = connection.get_connection_params()
    held = []

    class Holder:
        def __call__(self, item):
            conn = psycopg.connect(
                host=params.get("host"),
                port=params.get("port"),
                user=params.get("user"),
                password=params.get("password"),
                dbname=params.get("dbname"),
            )
            conn.execute("SELECT 1 FROM workitems_workitem WHERE id = %s FOR UPDATE", [item.pk])
            held.append(conn)
            return self

        def release(self):
            while held:
                conn = held.pop()
                conn.commit()
                conn.close()

    holder = Holder()
    _sql("SET lock_timeout = '300ms'")  # this connection is the one the test api's requests use
    yield holder
    holder.release()
    _sql("RESET lock_timeout")


def test_a_lock_timeout_is_retried_until_the_row_is_free(row_lock, api, alice, make_item):
    item = make_item()
    holder = row_lock(item)
    counters = Counters("api", "55P03")

    def release_after_the_first_timeout():
        deadline = time.monotonic() + 10
        while counters.retries == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        holder.release()

    releaser = threading.Thread(target=release_after_the_first_timeout)
    releaser.start()
    resp = _claim(api, alice, item)
    releaser.join()
    assert resp.status_code == 200, resp.content
    assert counters.retries == 1 and counters.exhausted == 0
    assert resp.json()["assignee"] == "alice"


def test_a_row_locked_throughout_answers_503_and_changes_nothing(row_lock, api, alice, make_item):
    item = make_item()
    row_lock(item)
    counters = Counters("api", "55P03")
    t0 = time.monotonic()
    resp = _claim(api, alice, item)
    assert resp.status_code == 503 and resp.json()["sqlstate"] == "55P03"
    assert time.monotonic() - t0 >= 0.9  # three waits of lock_timeout
    assert counters.retries == 2 and counters.exhausted == 1
    row_lock.release()
    _untouched(item)


# --- outside the API -----------------------------------------------------------------------------


def _command(actor, item, name="claim") -> dict:
    body = {"command_id": uuid.uuid4().hex, "command": name, "actor": actor.username, "item_id": item.pk}
    return inbound.parse(json.dumps(body).encode())


def test_the_inbound_bus_retries_a_transient_conflict(fault, alice, make_item):
    item = make_item()
    fault("40P01", times=2)
    counters = Counters("bus", "40P01")
    cmd = _command(alice, item)
    assert inbound.apply(cmd) == inbound.APPLIED
    assert counters.retries == 2
    row = InboxCommand.objects.get()
    assert row.command_id == cmd["command_id"] and row.outcome == "applied" and row.work_item_id == item.pk
    item.refresh_from_db()
    assert item.assignee == alice


def test_the_inbound_bus_gives_up_with_nothing_recorded(fault, alice, make_item):
    item = make_item()
    fault("40001", times=100)
    counters = Counters("bus", "40001")
    with pytest.raises(retry.TransientConflict) as info:
        inbound.apply(_command(alice, item))
    assert info.value.sqlstate == "40001" and counters.exhausted == 1
    assert not InboxCommand.objects.exists()  # the consumer requeues it; a redelivery applies it
    _untouched(item)


@pytest.fixture
def lapsed(svc, team_a):
    """An item reserved for r0 whose reservation has run out (the timeout job's work)."""
    timeout = timedelta(minutes=5)
    queue = factories.queue("reserve", groups=[team_a], strategy="round_robin", reservation_timeout=timeout)
    users = [factories.user(f"r{i}", roles=["worker"], groups=[team_a]) for i in range(2)]
    item = factories.item(actor=svc, queue=queue)
    assert item.reserved_for == users[0]
    WorkItem.objects.filter(pk=item.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    return item, users


def test_the_reservation_job_retries_a_transient_conflict(fault, lapsed):
    item, users = lapsed
    fault("40P01", times=1)
    counters = Counters("task", "40P01")
    assert tasks.expire_reservations() == 1  # the Celery job, in-process
    assert counters.retries == 1
    item.refresh_from_db()
    assert item.reserved_for == users[1]


def test_the_reservation_job_leaves_an_item_that_keeps_conflicting(fault, lapsed):
    item, users = lapsed
    fault("55P03", times=100)
    counters = Counters("task", "55P03")
    assert tasks.expire_reservations() == 0
    assert counters.exhausted == 1
    item.refresh_from_db()
    assert item.reserved_for == users[0]  # left as it was, for the next run


def test_inside_an_outer_transaction_nothing_is_retried(fault, alice, make_item):
    """The conflict aborted work the outer block started: only the outer level can run it again."""
    item = make_item()
    fault("40001", times=1)
    counters = Counters("test", "40001")
    with pytest.raises(DatabaseError) as info, transaction.atomic():
        retry.retry_transient(lambda: services.work_item_claim(item_id=item.pk, actor=alice), where="test")
    assert not isinstance(info.value, retry.TransientConflict)
    assert retry.transient_sqlstate(info.value) == "40001"
    assert fault.fires() == 1 and counters.retries == 0
    _untouched(item)
