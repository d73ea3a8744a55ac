"""Who sees a case and what of it: a worker sees a case only through its items they see, and in
it only those items and their audit records (nothing of the others, not even masked); sensitive
keys are masked in the case's data as in an item's context."""

from __future__ import annotations

import pytest

from tests import factories
from workitems import services

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed_case(svc, queue, team_b, make_case):
    """Case MIX-1 with one item of team A's queue and one of team B's (with a secret)."""
    make_case("MIX-1", data={"iban": "DE02 1234", "kind": "motor"}, sensitive_keys=["iban"])
    other = factories.queue("team-b-queue", groups=[team_b], sensitive_keys=["ssn"])
    mine = factories.item(actor=svc, queue=queue, case="MIX-1", title="for team a")
    theirs = factories.item(
        actor=svc, queue=other, case="MIX-1", title="for team b", context_data={"ssn": "123", "x": 1}
    )
    return mine, theirs


def test_a_worker_sees_only_their_items_and_records_of_the_case(api, alice, bob, mixed_case):
    mine, theirs = mixed_case
    got = api(alice).get("/api/v1/cases/MIX-1")
    assert got.status_code == 200
    body = got.json()
    assert [i["id"] for i in body["items"]] == [mine.pk]
    assert {r["work_item"] for r in body["history"]} == {None, mine.pk}
    assert "for team b" not in got.content.decode() and "123" not in got.content.decode()
    listed = api(alice).get("/api/v1/workitems", {"case": "MIX-1"}).json()["results"]
    assert [i["id"] for i in listed] == [mine.pk]

    bob_sees = api(bob).get("/api/v1/cases/MIX-1").json()
    assert [i["id"] for i in bob_sees["items"]] == [theirs.pk]
    assert bob_sees["items"][0]["context_data"] == {"ssn": "***", "x": 1}  # masked as for the item
    assert bob_sees["data"] == {"iban": "***", "kind": "motor"}


def test_a_case_without_a_visible_item_does_not_exist_for_the_caller(api, alice, svc, team_b, make_case):
    make_case("HIDDEN-1", title="not for alice")
    other = factories.queue("team-b-queue", groups=[team_b])
    factories.item(actor=svc, queue=other, case="HIDDEN-1")
    make_case("EMPTY-1")
    for number in ("HIDDEN-1", "EMPTY-1"):
        assert api(alice).get(f"/api/v1/cases/{number}").status_code == 404
    assert api(alice).get("/api/v1/cases").json()["results"] == []
    assert api(alice).post("/api/v1/cases/HIDDEN-1/close", {}, format="json").status_code == 404


def test_a_case_is_listed_once_for_a_worker_with_several_of_its_items(api, alice, svc, queue, make_case):
    make_case("MANY-1")
    for _ in range(3):
        factories.item(actor=svc, queue=queue, case="MANY-1")
    assert [c["case_number"] for c in api(alice).get("/api/v1/cases").json()["results"]] == ["MANY-1"]


def test_an_assigned_worker_sees_the_case_through_the_item_they_hold(api, bob, sam, svc, queue, make_case):
    make_case("HELD-1")
    item = factories.item(actor=svc, queue=queue, case="HELD-1")
    assert api(bob).get("/api/v1/cases/HELD-1").status_code == 404
    services.work_item_assign(item_id=item.pk, actor=sam, user=bob, override=True)
    assert [i["id"] for i in api(bob).get("/api/v1/cases/HELD-1").json()["items"]] == [item.pk]


def test_who_reads_the_cases_sensitive_data(api, svc, sam, ada, alice, queue, make_case):
    make_case("SENS-1", data={"iban": "DE02", "kind": "home"}, sensitive_keys=["iban"])
    factories.item(actor=svc, queue=queue, case="SENS-1")
    for user, iban in ((svc, "DE02"), (sam, "DE02"), (ada, "DE02"), (alice, "***")):
        assert api(user).get("/api/v1/cases/SENS-1").json()["data"]["iban"] == iban, user.username
        listed = api(user).get("/api/v1/cases").json()["results"][0]
        assert listed["data"]["iban"] == iban
    record = api(svc).get("/api/v1/cases/SENS-1").json()["history"][0]
    assert record["action"] == "case.create" and record["data"]["data"]["iban"] == "***"  # the audit trail: masked
