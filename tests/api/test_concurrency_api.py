"""ETag / If-Match and lost races over the API: 412 for a stale precondition, 409 for a lost race."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from tests.api.conftest import bearer
from tests.api.helpers import assert_problem, item_state


def conflicts() -> float:
    return REGISTRY.get_sample_value("claim_conflicts_total") or 0.0


def test_etag_round_trip_with_if_match(api, alice, make_item):
    item = make_item()
    client = api(alice)
    etag = client.get(f"/api/v1/workitems/{item.pk}")["ETag"]
    assert etag == '"1"'
    claimed = client.post(f"/api/v1/workitems/{item.pk}/claim", HTTP_IF_MATCH=etag)
    assert claimed.status_code == 200 and claimed["ETag"] == '"2"'
    # The old tag is stale now: 412, nothing changes.
    stale = client.post(f"/api/v1/workitems/{item.pk}/start", HTTP_IF_MATCH=etag)
    body = assert_problem(stale, 412, "stale-version")
    assert body["current_version"] == 2
    assert item_state(item.pk)[:2] == ("ASSIGNED", 2)
    started = client.post(f"/api/v1/workitems/{item.pk}/start", HTTP_IF_MATCH=claimed["ETag"])
    assert started.status_code == 200 and started["ETag"] == '"3"'


def test_stale_if_match_on_a_claim_counts_as_a_claim_conflict(api, alice, make_item):
    item = make_item()
    before = conflicts()
    assert_problem(api(alice).post(f"/api/v1/workitems/{item.pk}/claim", HTTP_IF_MATCH='"5"'), 412, "stale-version")
    assert conflicts() == before + 1


def test_sequential_second_claimer_gets_409_and_the_counter_moves(api, alice, carol, make_item):
    item = make_item()
    assert api(alice).post(f"/api/v1/workitems/{item.pk}/claim").status_code == 200
    before = conflicts()
    assert_problem(api(carol).post(f"/api/v1/workitems/{item.pk}/claim"), 409, "already-claimed")
    assert conflicts() == before + 1
    assert item_state(item.pk)[2] == alice.pk


def _race(users, url, *, if_match=None) -> list:
    barrier = threading.Barrier(len(users))
    results: list = [None] * len(users)
    errors: list = []
    auths = [bearer(u) for u in users]

    def run(i):
        try:
            client = APIClient(raise_request_exception=False)
            client.credentials(HTTP_AUTHORIZATION=auths[i])
            extra = {"HTTP_IF_MATCH": if_match} if if_match else {}
            barrier.wait(timeout=30)
            results[i] = client.post(url, {}, format="json", **extra)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(users))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claimers_one_wins_the_other_gets_409(alice, carol, make_item):
    item = make_item()
    before = conflicts()
    results = _race([alice, carol], f"/api/v1/workitems/{item.pk}/claim")
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 409], [r.content for r in results]
    winner = next(r for r in results if r.status_code == 200)
    loser = next(r for r in results if r.status_code == 409)
    assert_problem(loser, 409, "already-claimed")
    assert winner["ETag"] == '"2"'
    state, version, assignee = item_state(item.pk)
    assert (state, version) == ("ASSIGNED", 2)
    assert assignee == {"alice": alice.pk, "carol": carol.pk}[winner.json()["assignee"]]
    assert conflicts() == before + 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_claimers_with_if_match_one_wins_the_other_is_refused(alice, carol, make_item):
    item = make_item()
    before = conflicts()
    results = _race([alice, carol], f"/api/v1/workitems/{item.pk}/claim", if_match='"1"')
    statuses = sorted(r.status_code for r in results)
    assert statuses[0] == 200 and statuses[1] in (409, 412), statuses
    loser = next(r for r in results if r.status_code != 200)
    assert_problem(loser, loser.status_code, "stale-version" if loser.status_code == 412 else "already-claimed")
    assert item_state(item.pk)[:2] == ("ASSIGNED", 2)
    assert conflicts() == before + 1
