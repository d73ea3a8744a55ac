"""A close racing a create that joins the case, on real PostgreSQL with two connections: the
create holds the case's row FOR KEY SHARE until it commits, so the close waits for it and then
counts the new item (and refuses), and a create that comes while a close holds the row waits and
then finds the case closed. Neither order leaves an open item in a closed case."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction

from tests import factories
from workitems import services
from workitems.errors import Conflict
from workitems.models import Case, WorkItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _waiting_on_a_lock(pid_holder: list[int], timeout: float = 20.0) -> None:
    """Until the other thread's backend waits on a lock (pg_stat_activity), not a guess by time."""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_holder:
            with connection.cursor() as cur:
                cur.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid_holder[0]])
                row = cur.fetchone()
            if row and row[0] == "Lock":
                return
        time.sleep(0.02)
    raise AssertionError("the other transaction never waited on the case's row")


def _in_thread(fn, pid_holder: list[int], outcome: dict) -> threading.Thread:
    def run() -> None:
        try:
            with connection.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                pid_holder.append(cur.fetchone()[0])
            outcome["result"] = fn()
        except Exception as exc:  # the test inspects what was raised
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_close_waits_for_the_create_joining_the_case_and_refuses(svc, queue):
    services.case_create(actor=svc, data={"case_number": "RACE-1"})
    pid, outcome = [], {}
    with transaction.atomic():
        factories.item(actor=svc, queue=queue, case="RACE-1")  # holds the case's row until commit
        closer = _in_thread(lambda: services.case_close(actor=svc, case_number="RACE-1"), pid, outcome)
        _waiting_on_a_lock(pid)
    closer.join(timeout=30)
    assert isinstance(outcome.get("error"), Conflict), outcome
    assert Case.objects.get(case_number="RACE-1").state == "open"


def test_a_create_during_a_close_waits_and_finds_the_case_closed(svc, queue):
    services.case_create(actor=svc, data={"case_number": "RACE-2"})
    pid, outcome = [], {}
    with transaction.atomic():
        services.case_close(actor=svc, case_number="RACE-2")  # holds the row FOR UPDATE until commit
        creator = _in_thread(lambda: factories.item(actor=svc, queue=queue, case="RACE-2"), pid, outcome)
        _waiting_on_a_lock(pid)
    creator.join(timeout=30)
    assert isinstance(outcome.get("error"), Conflict) and "closed" in outcome["error"].detail, outcome
    assert not WorkItem.objects.filter(case_id="RACE-2").exists()
