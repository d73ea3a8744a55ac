"""The supervisor dashboard and its live fragments: tiles per visible queue, the charts' data,
the list of items breaching or at risk with actions through the service layer."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditRecord
from console import figures
from directory.models import Department, Profile
from tests import factories
from tests.querycount import count_statements
from workitems import services

pytestmark = pytest.mark.django_db


def _past(hours: float = 1) -> str:
    return (timezone.now() - timedelta(hours=hours)).isoformat()


def _tile(html: str, queue: str, figure: str) -> str:
    return re.search(rf'data-testid="tile-{queue}-{figure}"[^>]*>([^<]*)<', html).group(1)


def _after_the_shared_figures_expire() -> None:
    """Every dashboard shares a queue's figures for figures.FIGURES_TTL: a change shows once
    those read before it have expired (a dashboard polls every 2–3 s and promises 5 s)."""
    time.sleep(figures.FIGURES_TTL + 0.1)


def _chart(html: str, name: str) -> dict:
    block = re.search(rf'<script id="chart-{name}-data" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))


def test_workers_get_their_inbox_and_no_fragments(as_user, alice):
    client = as_user(alice)
    response = client.get("/console/")
    assert response.status_code == 302 and response.headers["Location"] == "/console/inbox"
    for part in ("tiles", "charts", "breaches"):
        assert client.get(f"/console/live/{part}").status_code == 404


def test_a_tile_per_queue_with_its_figures(as_user, sam, svc, alice, queue, make_item):
    queue.max_open = 10
    queue.save()
    make_item()  # offered
    make_item(assignee="alice")  # assigned
    started = make_item(assignee="alice")
    services.work_item_start(item_id=started.pk, actor=alice)
    make_item(due_at=_past())  # overdue, breached
    done = make_item(assignee="alice", due_at=(timezone.now() + timedelta(hours=2)).isoformat())
    services.work_item_start(item_id=done.pk, actor=alice)
    services.work_item_complete(item_id=done.pk, actor=alice, result={})
    html = as_user(sam).get("/console/").content.decode()
    assert _tile(html, queue.name, "open") == "4"
    assert _tile(html, queue.name, "unassigned") == "2"
    assert _tile(html, queue.name, "in-progress") == "1"
    assert _tile(html, queue.name, "overdue") == "1"
    assert _tile(html, queue.name, "sla") == "100%"
    assert _tile(html, queue.name, "utilization") == "40% of 10"
    throughput = _chart(html, "throughput")
    assert len(throughput["labels"]) == 24
    assert sum(throughput["datasets"][0]["data"]) == 5 and sum(throughput["datasets"][1]["data"]) == 1
    users = _chart(html, "users")
    assert dict(zip(users["labels"], users["datasets"][0]["data"], strict=True))["alice"] == 2
    age = _chart(html, "age")
    assert sum(age["datasets"][0]["data"]) == 4 and len(age["labels"]) == 6
    for testid in ("chart-throughput", "chart-user-load", "chart-age", "filter-queue", "filter-department"):
        assert f'data-testid="{testid}"' in html


def test_the_live_fragments_show_a_new_item_without_the_page(as_user, sam, make_item, queue):
    client = as_user(sam)
    before = client.get("/console/live/tiles").content.decode()
    assert _tile(before, queue.name, "open") == "0"
    assert "<html" not in before  # a fragment, not a page
    make_item()
    _after_the_shared_figures_expire()
    after = client.get("/console/live/tiles").content.decode()
    assert _tile(after, queue.name, "open") == "1"
    charts = client.get("/console/live/charts").content.decode()
    assert sum(_chart(charts, "throughput")["datasets"][0]["data"]) == 1
    breaching = make_item(due_at=_past())
    breaches = client.get("/console/live/breaches").content.decode()
    assert f'data-testid="breach-row-{breaching.pk}"' in breaches
    assert client.get("/console/live/nothing").status_code == 404


def test_the_dashboard_polls_each_fragment_within_a_few_seconds(as_user, sam):
    html = as_user(sam).get("/console/").content.decode()
    for part in ("tiles", "charts", "breaches"):
        tag = re.search(rf'<div id="live-{part}"[^>]*>', html).group(0)
        assert f'hx-get="/console/live/{part}?' in tag
        seconds = int(re.search(r'hx-trigger="every (\d)s"', tag).group(1))
        assert seconds <= 3
    assert '"includeIndicatorStyles": false' in html


def test_the_breach_list_escalates_reassigns_and_moves_through_the_commands(
    as_user, sam, alice, carol, team_a, make_item
):
    other = factories.queue("team-a-second", groups=[team_a])
    held = make_item(assignee="alice", due_at=_past(), title="held late")
    waiting = make_item(due_at=_past(2), title="waiting late")
    on_track = make_item(title="fine")
    client = as_user(sam)
    html = client.get("/console/live/breaches").content.decode()
    assert f'breach-row-{held.pk}"' in html and f'breach-row-{waiting.pk}"' in html
    assert f'breach-row-{on_track.pk}"' not in html
    for testid in (
        f"breach-{held.pk}-escalate",
        f"breach-{held.pk}-reassign",
        f"breach-{held.pk}-raise",
        f"breach-{waiting.pk}-move",
        f"breach-{waiting.pk}-reassign",
    ):
        assert f'data-testid="{testid}"' in html
    back = "/console/?queue=team-a-queue"
    response = client.post(
        f"/console/items/{held.pk}/escalate", {"version": held.version, "reason": "late", "next": back}
    )
    assert response.status_code == 302 and response.headers["Location"] == back
    held.refresh_from_db()
    assert held.escalation_level == 1
    # reassign: a held item is delegated, an unheld one assigned (services.work_item_reassign)
    client.post(f"/console/items/{held.pk}/reassign", {"version": held.version, "user": "carol", "next": back})
    held.refresh_from_db()
    assert held.assignee == carol
    client.post(f"/console/items/{waiting.pk}/reassign", {"version": waiting.version, "user": "alice", "next": back})
    waiting.refresh_from_db()
    assert (waiting.assignee, waiting.state) == (alice, "ASSIGNED")
    # raise priority: the update command, by the amount the row's form carries
    raised = re.search(rf'breach-{held.pk}-raise" title="priority (\d+) → (\d+)"', html)
    assert raised and int(raised.group(2)) == min(100, int(raised.group(1)) + 10)
    response = client.post(
        f"/console/items/{held.pk}/update", {"version": held.version, "priority": raised.group(2), "next": back}
    )
    assert response.status_code == 302 and response.headers["Location"] == back
    held.refresh_from_db()
    assert held.priority == int(raised.group(2))
    client.post(f"/console/items/{waiting.pk}/move", {"version": waiting.version, "queue": other.name, "next": back})
    waiting.refresh_from_db()
    assert waiting.queue == other
    actions = list(
        AuditRecord.objects.filter(work_item__in=[held, waiting], channel="console")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["escalate", "delegate", "assign", "update", "move"]


def test_an_offsite_next_is_ignored(as_user, sam, make_item):
    item = make_item(due_at=_past())
    response = as_user(sam).post(
        f"/console/items/{item.pk}/escalate", {"version": item.version, "next": "https://evil.example/"}
    )
    assert response.headers["Location"] == f"/console/items/{item.pk}"


def test_filter_by_queue_and_department(as_user, sam, svc, alice, bob, team_b, queue, make_item):
    other = factories.queue("team-b-queue", groups=[team_b])
    make_item(assignee="alice", due_at=_past())
    theirs = factories.item(actor=svc, queue=other, assignee="bob", due_at=_past())
    claims = Department.objects.create(code="claims", name="Claims")
    sub = Department.objects.create(code="claims-north", name="Claims North", parent=claims)
    Profile.objects.update_or_create(user=bob, defaults={"department": sub})
    client = as_user(sam)
    everything = client.get("/console/").content.decode()
    assert 'data-testid="tile-team-a-queue"' in everything and 'data-testid="tile-team-b-queue"' in everything
    one = client.get("/console/live/tiles?queue=team-b-queue").content.decode()
    assert 'data-testid="tile-team-b-queue"' in one and 'data-testid="tile-team-a-queue"' not in one
    by_department = client.get("/console/live/breaches?department=claims").content.decode()
    assert re.findall(r'data-testid="breach-row-(\d+)"', by_department) == [str(theirs.pk)]
    users = _chart(client.get("/console/live/charts?department=claims").content.decode(), "users")
    assert users["labels"] == ["bob"]
    unknown = client.get("/console/?queue=nope&window=forever")
    assert unknown.status_code == 200  # unknown filter values fall back to everything, 24 h


def test_an_admin_sees_the_dashboard_a_service_client_does_not(as_user, ada, svc):
    assert as_user(ada).get("/console/").status_code == 200
    assert as_user(svc).get("/console/").status_code == 404


@pytest.mark.parametrize("part", ["tiles", "charts", "breaches"])
def test_a_fragment_costs_the_same_number_of_queries_for_more_items(
    as_user, sam, alice, carol, make_item, part, monkeypatch
):
    monkeypatch.setattr(figures, "FIGURES_TTL", 0)  # nothing shared: each call reads the figures
    client = as_user(sam)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(f"/console/live/{part}").status_code == 200
        return len(ctx.captured_queries)

    for _ in range(2):
        make_item(assignee="alice", due_at=_past())
    few = queries()
    for _ in range(4):
        make_item(assignee="carol", due_at=_past())
        make_item(due_at=_past())
    assert queries() == few


@pytest.mark.parametrize("part", ["tiles", "charts"])
def test_dashboards_share_the_figures_of_their_queues_for_a_second(as_user, sam, ada, alice, make_item, part):
    make_item(assignee="alice", due_at=_past())
    with count_statements() as first:
        assert as_user(sam).get(f"/console/live/{part}").status_code == 200
    with count_statements() as second:  # another supervisor's dashboard, the same queues
        theirs = as_user(ada).get(f"/console/live/{part}")
    assert theirs.status_code == 200
    assert any("stats_" in sql for sql in first.counted), first.report()
    assert not any("stats_" in sql for sql in second.counted), second.report()  # the counters read once
    if part == "charts":  # the shared figures are the queue's: alice holds the one item
        users = _chart(theirs.content.decode(), "users")
        assert dict(zip(users["labels"], users["datasets"][0]["data"], strict=True))["alice"] == 1
    else:
        assert _tile(theirs.content.decode(), "team-a-queue", "open") == "1"
