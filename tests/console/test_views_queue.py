"""The queue page: figures over a window, its items (the API's filters, orderings and cursor
pagination), its configuration read-only."""

from __future__ import annotations

import re
import time

import pytest

from console import figures
from tests import factories

pytestmark = pytest.mark.django_db


def _ids(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-testid="queue-item-(\d+)"', html)]


def _link(html: str, testid: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" data-testid="{testid}"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_a_worker_sees_their_queue_and_not_another_teams(as_user, alice, bob, queue):
    assert as_user(alice).get(f"/console/queues/{queue.name}").status_code == 200
    assert as_user(bob).get(f"/console/queues/{queue.name}").status_code == 404
    assert as_user(alice).get("/console/queues/no-such-queue").status_code == 404


def test_the_configuration_is_shown_read_only(as_user, sam, queue):
    queue.max_open = 25
    queue.save()
    html = as_user(sam).get(f"/console/queues/{queue.name}").content.decode()
    assert 'data-testid="queue-config-max_open">25<' in html
    assert 'data-testid="queue-config-strategy">offer<' in html
    config = re.search(r'<dl data-testid="queue-config">.*?</dl>', html, re.S).group(0)
    assert "<input" not in config and "<form" not in config
    assert 'data-testid="queue-admin-link"' not in html  # a supervisor is not the admin


def test_items_are_cursor_paginated_in_the_chosen_order(as_user, sam, make_item):
    items = [make_item(priority=p) for p in (10, 80, 50, 80, 30)]
    client = as_user(sam)
    first = client.get("/console/queues/team-a-queue?ordering=-priority&page_size=2").content.decode()
    by_priority = sorted(items, key=lambda i: (-i.priority, -i.pk))
    assert _ids(first) == [i.pk for i in by_priority[:2]]
    second = client.get(_link(first, "items-next")).content.decode()
    assert _ids(second) == [i.pk for i in by_priority[2:4]]
    third = client.get(_link(second, "items-next")).content.decode()
    assert _ids(third) == [by_priority[4].pk] and _link(third, "items-next") is None
    back = client.get(_link(third, "items-previous")).content.decode()
    assert _ids(back) == [i.pk for i in by_priority[2:4]]


def test_items_filter_by_state_and_assignee(as_user, sam, alice, make_item):
    offered = make_item()
    held = make_item(assignee="alice")
    client = as_user(sam)
    assert _ids(client.get("/console/queues/team-a-queue?state=OFFERED").content.decode()) == [offered.pk]
    assert _ids(client.get("/console/queues/team-a-queue?assignee=alice").content.decode()) == [held.pk]
    both = client.get("/console/queues/team-a-queue?state=OFFERED&state=ASSIGNED&ordering=created_at")
    assert _ids(both.content.decode()) == [offered.pk, held.pk]


def test_bad_filters_and_cursors_are_a_message_not_a_500(as_user, sam, make_item):
    make_item()
    client = as_user(sam)
    bad_state = client.get("/console/queues/team-a-queue?state=EXPLODED")
    assert bad_state.status_code == 400 and 'data-testid="items-error"' in bad_state.content.decode()
    bad_cursor = client.get("/console/queues/team-a-queue?cursor=garbage")
    assert bad_cursor.status_code == 400 and "cursor is not valid" in bad_cursor.content.decode()


def test_the_window_changes_the_window_figures(as_user, sam, make_item):
    make_item()
    html = as_user(sam).get("/console/queues/team-a-queue?window=PT1H").content.decode()
    assert 'data-testid="queue-stat-created">1<' in html and "Created (PT1H)" in html
    assert 'data-testid="queue-stat-open">1<' in html


def test_an_admin_gets_the_link_to_change_the_queue(as_user, queue):
    admin = factories.user("root", roles=["admin"], is_staff=True, is_superuser=True)
    html = as_user(admin).get(f"/console/queues/{queue.name}").content.decode()
    assert 'data-testid="queue-admin-link"' in html


def test_the_figures_refresh_through_their_fragment(as_user, alice, bob, sam, make_item, queue):
    client = as_user(sam)
    page = client.get(f"/console/queues/{queue.name}?window=P7D").content.decode()
    assert f'hx-get="/console/queues/{queue.name}/live?window=P7D" hx-trigger="every 3s"' in page
    assert 'data-testid="queue-stat-open">0<' in client.get(f"/console/queues/{queue.name}/live").content.decode()
    make_item()
    time.sleep(figures.FIGURES_TTL + 0.1)  # the page's figures, shared by every dashboard, expire first
    fragment = client.get(f"/console/queues/{queue.name}/live?window=P7D").content.decode()
    assert "<html" not in fragment and 'data-testid="queue-stat-open">1<' in fragment and "Created (P7D)" in fragment
    assert as_user(alice).get(f"/console/queues/{queue.name}/live").status_code == 200
    assert as_user(bob).get(f"/console/queues/{queue.name}/live").status_code == 404
