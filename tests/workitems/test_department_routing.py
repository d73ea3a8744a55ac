"""Department routing: an item with a department (its own, or its queue's) is for the members
of that department and its sub-departments only: claim, claim-next, push distribution and the
people it may be given to."""

from __future__ import annotations

import pytest

from directory.models import Department, Profile
from tests import factories
from workitems import services
from workitems.errors import ConstraintViolated, ValidationFailed

pytestmark = pytest.mark.django_db


@pytest.fixture
def tree(alice, carol):
    """claims → claims-north; alice in claims-north (so in claims' subtree), carol in sales."""
    claims = Department.objects.create(code="claims", name="Claims")
    north = Department.objects.create(code="claims-north", name="Claims North", parent=claims)
    sales = Department.objects.create(code="sales", name="Sales")
    Profile.objects.create(user=alice, department=north)
    Profile.objects.create(user=carol, department=sales)
    return {"claims": claims, "north": north, "sales": sales}


def test_create_takes_a_department_or_the_queues(svc, queue, tree):
    item = factories.item(actor=svc, queue=queue, department="claims")
    assert item.department_id == tree["claims"].pk
    queue.department = tree["sales"]
    queue.save(update_fields=["department"])
    assert factories.item(actor=svc, queue=queue).department_id == tree["sales"].pk
    assert factories.item(actor=svc, queue=queue, department="claims").department_id == tree["claims"].pk
    with pytest.raises(ValidationFailed) as info:
        factories.item(actor=svc, queue=queue, department="no-such")
    assert info.value.errors[0]["field"] == "department"


def test_claim_is_refused_outside_the_subtree(svc, queue, alice, carol, tree):
    item = factories.item(actor=svc, queue=queue, department="claims")
    with pytest.raises(ConstraintViolated) as info:
        services.work_item_claim(item_id=item.pk, actor=carol)  # sales: not under claims
    assert info.value.constraint == "candidate"
    assert services.work_item_claim(item_id=item.pk, actor=alice).assignee_id == alice.pk  # claims-north


def test_an_item_of_a_sub_department_is_not_for_its_parent(svc, queue, alice, carol, tree):
    Profile.objects.filter(user=carol).update(department=tree["claims"])
    item = factories.item(actor=svc, queue=queue, department="claims-north")
    with pytest.raises(ConstraintViolated):
        services.work_item_claim(item_id=item.pk, actor=carol)
    assert services.work_item_claim(item_id=item.pk, actor=alice).state == "ASSIGNED"


def test_claim_next_skips_items_outside_the_subtree(svc, queue, alice, carol, tree):
    theirs = factories.item(actor=svc, queue=queue, department="claims", priority=90)
    open_to_all = factories.item(actor=svc, queue=queue, priority=10)
    assert services.work_item_claim_next(actor=carol).pk == open_to_all.pk
    assert services.work_item_claim_next(actor=carol) is None
    assert services.work_item_claim_next(actor=alice, queue=queue.name).pk == theirs.pk


def test_a_user_without_a_department_gets_no_department_work(svc, queue, tree):
    dora = factories.user("dora", roles=["worker"], groups=list(queue.candidate_groups.all()))
    factories.item(actor=svc, queue=queue, department="claims")
    assert services.work_item_claim_next(actor=dora) is None


def test_push_distribution_and_assignment_honour_the_department(svc, team_a, sam, alice, carol, tree):
    push = factories.queue("push-dept", groups=[team_a], strategy="least_loaded", department=tree["sales"])
    item = factories.item(actor=svc, queue=push)
    assert item.assignee_id == carol.pk  # alice (claims-north) is not in sales' subtree
    other = factories.item(actor=svc, queue=push, department="claims")
    assert other.assignee_id == alice.pk
    with pytest.raises(ConstraintViolated) as info:
        services.work_item_delegate(item_id=other.pk, actor=sam, user="carol")
    assert info.value.constraint == "candidate"
    with pytest.raises(ConstraintViolated):  # a direct assignee on create is checked the same way
        factories.item(actor=svc, queue=push, department="claims", assignee="carol")


def test_queue_weight_and_department_over_the_queue_api(api_as, ada, tree):
    resp = api_as(ada).post("/api/v1/queues", {"name": "routed", "weight": 5, "department": "claims"}, format="json")
    assert resp.status_code == 201, resp.content
    assert (resp.json()["weight"], resp.json()["department"]) == (5, "claims")
    resp = api_as(ada).patch("/api/v1/queues/routed", {"weight": 0, "department": "nope"}, format="json")
    assert resp.status_code == 400
    assert {e["field"] for e in resp.json()["errors"]} == {"weight", "department"}
    resp = api_as(ada).patch("/api/v1/queues/routed", {"department": None}, format="json")
    assert resp.status_code == 200 and resp.json()["department"] is None
