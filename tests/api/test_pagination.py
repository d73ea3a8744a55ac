"""Cursor pagination of GET /workitems: every item exactly once, in order, in every ordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from tests import factories
from tests.api.helpers import assert_field_error, assert_problem
from workitems import services
from workitems.models import WorkItem

N = 120
PAGE = 50
FAR = datetime.max.replace(tzinfo=UTC)


@pytest.fixture
def many_items(svc, team_a):
    """120 items: priorities and due dates with many ties, a third without a due date."""
    q = factories.queue("paged", groups=[team_a])  # no SLA: an item without due_at keeps none
    now = timezone.now()
    bodies = []
    for i in range(N):
        body = factories.item_body(q, priority=(i * 7) % 5 * 20)
        if i % 3:
            body["due_at"] = (now + timedelta(days=(i % 4) + 1)).isoformat()
        bodies.append(body)
    services.work_item_create_many(actor=svc, items=bodies)
    return list(WorkItem.objects.values("id", "priority", "due_at", "created_at"))


def _expected(rows, ordering: str) -> list[int]:
    field = ordering.lstrip("-")
    desc = ordering.startswith("-")

    def key(r):
        value = r[field]
        if field == "due_at" and value is None:
            value = FAR  # no deadline sorts last ascending, first descending
        return (value, r["id"])

    return [r["id"] for r in sorted(rows, key=key, reverse=desc)]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _walk(client, first_url: str) -> tuple[list[int], list[int], list[str]]:
    """Follow `next` to the end; returns ids in order, page sizes and the pages' URLs."""
    ids, sizes, urls = [], [], []
    url = first_url
    while url:
        urls.append(url)
        resp = client.get(url)
        assert resp.status_code == 200, resp.content[:300]
        body = resp.json()
        ids += [r["id"] for r in body["results"]]
        sizes.append(len(body["results"]))
        url = _path(body["next"]) if body["next"] else None
        assert len(urls) <= N, "pagination does not end"
    return ids, sizes, urls


ORDERINGS = ["priority", "-priority", "due_at", "-due_at", "created_at", "-created_at"]


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_next_walks_every_item_exactly_once_in_order(api, sam, many_items, ordering):
    ids, sizes, _ = _walk(api(sam), f"/api/v1/workitems?ordering={ordering}&page_size={PAGE}")
    assert len(ids) == len(set(ids)) == N, "an item was skipped or repeated"
    assert sizes == [50, 50, 20]
    assert ids == _expected(many_items, ordering)


@pytest.mark.parametrize(
    "ordering",
    ORDERINGS,
)
def test_previous_walks_back_over_the_same_pages(api, sam, many_items, ordering):
    client = api(sam)
    ids, sizes, urls = _walk(client, f"/api/v1/workitems?ordering={ordering}&page_size={PAGE}")
    page = client.get(urls[-1]).json()
    back_pages = []
    while page["previous"]:
        page = client.get(_path(page["previous"])).json()
        back_pages.insert(0, [r["id"] for r in page["results"]])
        assert len(back_pages) <= N
    assert [len(p) for p in back_pages] == [50, 50]
    assert sum(back_pages, []) == ids[:100]


def test_default_order_is_newest_first(api, sam, many_items):
    ids, _, _ = _walk(api(sam), f"/api/v1/workitems?page_size={PAGE}")
    assert ids == _expected(many_items, "-created_at")


def test_filters_hold_across_pages(api, sam, many_items):
    ids, sizes, _ = _walk(api(sam), "/api/v1/workitems?ordering=priority&page_size=10&priority_min=60")
    wanted = [
        i for i in _expected(many_items, "priority") if next(r for r in many_items if r["id"] == i)["priority"] >= 60
    ]
    assert ids == wanted and all(s <= 10 for s in sizes)


def test_default_page_size_is_50(api, sam, many_items):
    body = api(sam).get("/api/v1/workitems").json()
    assert len(body["results"]) == 50 and body["next"] and body["previous"] is None


@pytest.mark.parametrize("size", ["501", "0", "-1", "abc", "1.5", "1e3", ""])
def test_bad_page_size_is_400(api, sam, size):
    resp = api(sam).get(f"/api/v1/workitems?page_size={size}")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "page_size")


def test_page_size_500_is_the_maximum_allowed(api, sam):
    assert api(sam).get("/api/v1/workitems?page_size=500").status_code == 200


def test_max_page_size_follows_the_configuration(api, api_config, sam):
    api_config({"performance": {"maxPageSize": 10}})
    assert api(sam).get("/api/v1/workitems?page_size=10").status_code == 200
    resp = api(sam).get("/api/v1/workitems?page_size=11")
    assert_problem(resp, 400, "validation-error", detail_contains="10")


def test_garbage_cursor_is_a_4xx_problem_not_a_500(api, sam):
    resp = api(sam).get("/api/v1/workitems?cursor=not-a-cursor")
    assert 400 <= resp.status_code < 500
    assert_problem(resp, resp.status_code, resp.json()["type"].rsplit("/", 1)[1], detail_contains="cursor")


@pytest.mark.parametrize("path", ["/api/v1/workitems", "/api/v1/audit"])
def test_garbage_cursor_is_400_naming_the_cursor(api, sam, path):
    resp = api(sam).get(f"{path}?cursor=not-a-cursor")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "cursor")
