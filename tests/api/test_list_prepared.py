"""GET /workitems without filters (a worker's inbox, paged and ordered) runs one statement
compiled once per shape and prepared (workitems/api/views.py `_unfiltered_page`, config.sqlcache):
it answers exactly what the filters' ORM path answers, for each caller's own visibility, in
every ordering and in both directions (issue 13)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.utils import timezone

from config import sqlcache
from tests import factories
from workitems import services
from workitems.filters import ORDERINGS

pytestmark = pytest.mark.django_db

# priority_min=0 selects every item (priorities run 0-100) but is a filter: the ORM path
ORM_PATH = "&priority_min=0"


@pytest.fixture
def world(svc, team_a, team_b):
    """Items in two teams' queues, one naming a user, one excluding one, ties on priority and
    due dates, a third without a deadline."""
    qa = factories.queue("lp-a", groups=[team_a])
    qb = factories.queue("lp-b", groups=[team_b])
    now = timezone.now()
    bodies = []
    for i in range(36):
        body = factories.item_body(qa if i % 2 else qb, priority=(i * 7) % 4 * 30)
        if i % 3:
            body["due_at"] = (now + timedelta(days=i % 3 + 1)).isoformat()
        bodies.append(body)
    bodies[4]["candidate_users"] = ["lp-named"]
    bodies[5]["excluded_users"] = ["lp-both"]
    world = {
        "a": factories.user("lp-a-worker", roles=["worker"], groups=[team_a]),
        "both": factories.user("lp-both", roles=["worker"], groups=[team_a, team_b]),
        "named": factories.user("lp-named", roles=["worker"]),
    }
    services.work_item_create_many(actor=svc, items=bodies)
    return world


def w_field(ordering: str) -> str:
    field = ordering.lstrip("-")
    return "due_sort" if field == "due_at" else field


def _local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _walk(client, url: str, link: str = "next") -> tuple[list[list[int]], str]:
    """The pages from `url` following `link`, and the last page's URL."""
    pages = []
    while True:
        resp = client.get(url)
        assert resp.status_code == 200, resp.content[:300]
        body = resp.json()
        pages.append([r["id"] for r in body["results"]])
        assert len(pages) < 100
        if not body[link]:
            return pages, url
        url = _local(body[link])


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_the_unfiltered_list_answers_what_the_orm_path_answers(api, world, sam, ordering):
    for who in (world["a"], world["both"], world["named"], sam):
        client = api(who)
        base = f"/api/v1/workitems?ordering={ordering}&page_size=7"
        (fast, last), (orm, _) = _walk(client, base), _walk(client, base + ORM_PATH)
        assert fast == orm, who.username
        assert sum(fast, []), f"{who.username} sees items"
        back, _ = _walk(client, last, "previous")  # from the last page back to the first
        assert back[::-1] == fast, who.username
    kept = sqlcache.templates()
    shapes = {k: v for k, v in kept.items() if k[0] == "workitems-list" and k[3] == w_field(ordering)}
    assert {k[5] for k in shapes} == {False, True}, "first pages and pages past a cursor"
    assert all(v is not None for v in shapes.values()), "every shape compiled, none unfit"
    # the callers see different items: the statement is the same, the values their own
    seen = {w: set(sum(_walk(api(world[w]), "/api/v1/workitems?page_size=50")[0], [])) for w in world}
    assert seen["a"] < seen["both"] and len(seen["named"]) == 1 and not seen["named"] & seen["a"]


def test_the_unfiltered_list_is_one_prepared_statement(api, world):
    client = api(world["a"])
    assert client.get("/api/v1/workitems?page_size=5").status_code == 200

    def prepared():
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s AND statement LIKE %s",
                ['%FROM "workitems_workitem"%', "%LIMIT 6%"],
            )
            return cur.fetchone()[0]

    assert prepared() == 1
    assert client.get("/api/v1/workitems?page_size=5").status_code == 200
    assert api(world["both"]).get("/api/v1/workitems?page_size=5").status_code == 200
    assert prepared() == 2, "one statement per number of the caller's groups (lp-both has two)"
