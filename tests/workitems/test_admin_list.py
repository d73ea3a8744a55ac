"""The work-item admin at scale and its item page: the change list's statements do not grow
with the table (no COUNT(*) of the whole table, no SELECT DISTINCT), overdue and at-risk rows
are highlighted by the same rules the filters use, and the item page's action buttons run the
commands (audited, channel "admin"), with refusals and stale versions shown as messages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditRecord
from config.admin_lists import EstimatedCountPaginator
from tests import factories
from workitems import services
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/workitems/workitem/"
FILTERS = ["", "?state__exact=OFFERED", "?sla=overdue", "?sla=at_risk", "?escalated=any", "?q=1", "?p=2"]


def page(item) -> str:
    return f"{CHANGELIST}{item.pk}/change/"


def act_url(item) -> str:
    return f"{CHANGELIST}{item.pk}/act/"


def shown_messages(resp) -> list[str]:
    return [str(m) for m in resp.context["messages"]]


def more_rows(queue, n: int) -> None:
    """`n` plain OFFERED rows, set-based: the list's cost must not depend on how many there are."""
    WorkItem.objects.bulk_create(
        [WorkItem(workflow_id=f"bulk-{i}", task_name="review", queue=queue, state="OFFERED") for i in range(n)],
        batch_size=1000,
    )
    with connection.cursor() as cur:
        cur.execute("ANALYZE workitems_workitem")


def whole_table_reads(sqls: list[str]) -> list[str]:
    """A DISTINCT anywhere, or a COUNT over the work items that no LIMIT bounds."""
    distinct = [s for s in sqls if re.search(r"\bDISTINCT\b", s, re.I)]
    counts = [s for s in sqls if re.search(r"\bCOUNT\(", s, re.I) and "workitems_workitem" in s]
    return distinct + [s for s in counts if not re.search(r"\bLIMIT\b", s)]


def changelist_sql(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return [q["sql"] for q in ctx.captured_queries]


# --- the list at scale ------------------------------------------------------------------


def test_changelist_statements_do_not_grow_with_rows(admin_client, make_item, queue, django_assert_max_num_queries):
    for _ in range(3):
        make_item()
    small = {url: len(changelist_sql(admin_client, CHANGELIST + url)) for url in FILTERS if url != "?p=2"}
    more_rows(queue, 1500)  # past the paginator's exact count (1,000): the planner's estimate
    for url in FILTERS:
        # one more at most: the EXPLAIN that gives the estimate
        with django_assert_max_num_queries(small.get(url, small[""]) + 1) as ctx:
            resp = admin_client.get(CHANGELIST + url)
        assert resp.status_code == 200
        sqls = [q["sql"] for q in ctx.captured_queries]
        assert whole_table_reads(sqls) == [], (url, whole_table_reads(sqls))


def test_changelist_says_about_past_a_thousand_and_links_no_far_page(admin_client, make_item, queue):
    make_item()
    more_rows(queue, 1500)
    html = admin_client.get(CHANGELIST).content.decode()
    assert re.search(r"about \d[\d,]* work items", html), html[html.find('class="paginator"') :][:400]
    # the estimated last page is not linked: an OFFSET through the whole table
    last = max(int(n) for n in re.findall(r"[?&]p=(\d+)", html))
    assert last <= 1 + EstimatedCountPaginator.pages_shown


def test_the_paginator_counts_exactly_up_to_its_bound_and_past_it_only_estimates(make_item, queue):
    class Small(EstimatedCountPaginator):
        exact_up_to = 5

    for _ in range(4):
        make_item()
    with connection.cursor() as cur:
        cur.execute("ANALYZE workitems_workitem")
    qs = WorkItem.objects.order_by("-id")
    with CaptureQueriesContext(connection) as ctx:
        exact = Small(qs, 2)
        assert exact.count == 4 and not exact.estimated
    explain, count = [q["sql"] for q in ctx.captured_queries]
    assert explain.startswith("EXPLAIN") and "COUNT(" in count and "LIMIT 6" in count

    more_rows(queue, 20)  # analysed: the planner now expects 24 rows
    with CaptureQueriesContext(connection) as ctx:
        estimated = Small(qs, 2)
        assert estimated.count == 24 and estimated.estimated
    (explain,) = [q["sql"] for q in ctx.captured_queries]  # no count at all
    assert explain.startswith("EXPLAIN")


def test_no_date_drill_down_no_facets_and_the_filters_have_fixed_choices(admin_client, make_item):
    make_item()
    html = admin_client.get(CHANGELIST).content.decode()
    assert 'class="toplinks"' not in html  # the date hierarchy's bar (a MIN/MAX and a DISTINCT)
    assert "_facets" not in html  # "Show counts" is a COUNT per choice
    for choice in ("?sla=overdue", "?sla=at_risk", "?escalated=1", "?escalated=any"):
        assert choice in html


def test_search_is_an_exact_id_or_workflow_id(admin_client, make_item):
    a, b = make_item(), make_item(workflow_id="order-4711")
    by_id = admin_client.get(f"{CHANGELIST}?q={a.pk}").context["cl"].result_list
    by_workflow = admin_client.get(f"{CHANGELIST}?q=order-4711").context["cl"].result_list
    partial = admin_client.get(f"{CHANGELIST}?q=order").context["cl"].result_list
    assert [i.pk for i in by_id] == [a.pk] and [i.pk for i in by_workflow] == [b.pk] and list(partial) == []


# --- highlighted rows ---------------------------------------------------------------------


@pytest.fixture
def sla_items(make_item, svc, queue, alice, sam):
    now = timezone.now()
    overdue = make_item(due_at=(now - timedelta(minutes=5)).isoformat())
    at_risk = make_item(due_at=(now + timedelta(hours=1)).isoformat())
    services.work_item_sla_advance(item_id=at_risk.pk, now=now + timedelta(minutes=50))
    on_track = make_item(due_at=(now + timedelta(days=2)).isoformat())
    done_late = factories.item_in("COMPLETED", queue=queue, creator=svc, worker=alice, supervisor=sam)
    WorkItem.objects.filter(pk=done_late.pk).update(due_at=now - timedelta(days=1))  # closed: not highlighted
    at_risk.refresh_from_db()
    assert at_risk.sla_state == "at_risk"
    return {"overdue": overdue, "at-risk": at_risk, None: on_track, "closed": done_late}


def row_flags(html: str) -> dict[int, str | None]:
    table = html[html.index('id="result_list"') :]
    flags = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table, re.S):
        pk = re.search(r'name="_selected_action" value="(\d+)"', row)
        if pk:
            flag = re.search(r'class="ws-sla ws-sla-([a-z-]+)"', row)
            flags[int(pk.group(1))] = flag.group(1) if flag else None
    return flags


def test_overdue_and_at_risk_rows_are_highlighted(admin_client, sla_items):
    resp = admin_client.get(CHANGELIST)
    html = resp.content.decode()
    flags = row_flags(html)
    assert flags[sla_items["overdue"].pk] == "overdue"
    assert flags[sla_items["at-risk"].pk] == "at-risk"
    assert flags[sla_items[None].pk] is None and flags[sla_items["closed"].pk] is None
    # the colours come from a stylesheet (the CSP allows no inline style)
    assert "workitems/admin.css" in html and not re.search(r"<[^>]+\sstyle=", html[html.index('id="result_list"') :])


def test_the_sla_filters_select_what_is_highlighted(admin_client, sla_items):
    for value, flag in (("overdue", "overdue"), ("at_risk", "at-risk")):
        shown = row_flags(admin_client.get(f"{CHANGELIST}?sla={value}").content.decode())
        assert shown == {sla_items[flag].pk: flag}, (value, shown)


def test_the_escalation_filter_takes_open_items_of_the_level(admin_client, make_item, root):
    once, twice, never = make_item(), make_item(), make_item()
    for item, times in ((once, 1), (twice, 2)):
        for _ in range(times):
            services.work_item_escalate(item_id=item.pk, actor=root, reason="late")
    ids = lambda q: {i.pk for i in admin_client.get(f"{CHANGELIST}?escalated={q}").context["cl"].result_list}  # noqa: E731
    assert ids("1") == {once.pk} and ids("2") == {twice.pk} and ids("any") == {once.pk, twice.pk}
    assert never.pk not in ids("any")


@pytest.fixture
def root(admin_user):
    return admin_user


# --- the item page's buttons -----------------------------------------------------------------


def forms_on(html: str) -> dict[str, str]:
    """action → its form's HTML, from the item page."""
    return dict(
        re.findall(
            r'<form method="post" action="[^"]*/act/" class="ws-action" data-action="(\w+)">(.*?)</form>', html, re.S
        )
    )


def test_the_item_page_has_a_button_for_each_allowed_action_with_its_inputs(admin_client, root, make_item):
    item = make_item()
    html = admin_client.get(page(item)).content.decode()
    forms = forms_on(html)
    assert sorted(forms) == sorted(services.allowed_actions_for(item, root))
    assert f'name="version" value="{item.version}"' in forms["cancel"] and 'name="reason"' in forms["cancel"]
    assert 'name="user"' in forms["assign"] and "<button" in forms["assign"]
    assert not re.search(r"<[^>]+\sstyle=", html[html.index('id="item-actions"') :])


def test_a_button_runs_the_command_audited_as_the_admin(admin_client, root, make_item, alice):
    item = make_item()
    resp = admin_client.post(act_url(item), {"action": "assign", "version": item.version, "user": "alice"}, follow=True)
    assert resp.redirect_chain[-1][0] == page(item)
    item.refresh_from_db()
    assert (item.state, item.assignee_id) == ("ASSIGNED", alice.pk)
    last = AuditRecord.objects.filter(work_item=item).order_by("-seq").first()
    assert (last.action, last.channel, last.actor_id) == ("assign", "admin", root.pk)
    assert any("assign: done" in m for m in shown_messages(resp))

    resp = admin_client.post(
        act_url(item), {"action": "cancel", "version": item.version, "reason": "duplicate"}, follow=True
    )
    item.refresh_from_db()
    last = AuditRecord.objects.filter(work_item=item).order_by("-seq").first()
    assert item.state == "CANCELLED" and (last.action, last.channel, last.data["reason"]) == (
        "cancel",
        "admin",
        "duplicate",
    )


def test_a_refused_action_is_a_message_not_an_error_page(admin_client, make_item, alice):
    item = services.work_item_claim(item_id=make_item().pk, actor=alice)
    before = AuditRecord.objects.filter(work_item=item).count()
    # complete is the assignee's: the admin is refused by the command
    resp = admin_client.post(
        act_url(item), {"action": "complete", "version": item.version, "result": "{}"}, follow=True
    )
    assert resp.status_code == 200 and resp.redirect_chain[-1][0] == page(item)
    msgs = shown_messages(resp)
    assert len(msgs) == 1 and msgs[0].startswith("complete: not done."), msgs
    # bad input, an unknown user, an unknown action: messages too
    for data, expected in (
        ({"action": "complete", "result": "{not json"}, "result: is not valid JSON"),
        ({"action": "delegate", "user": "nobody-such"}, "delegate: not done."),
        ({"action": "teleport"}, "unknown action 'teleport'"),
        ({"action": "escalate", "version": "x"}, "the page sent no version"),
    ):
        resp = admin_client.post(act_url(item), {"version": item.version, **data}, follow=True)
        assert resp.status_code == 200 and any(expected in m for m in shown_messages(resp)), (
            data,
            shown_messages(resp),
        )
    item.refresh_from_db()
    assert item.state == "ASSIGNED" and AuditRecord.objects.filter(work_item=item).count() == before


def test_a_stale_version_says_the_item_changed_meanwhile(admin_client, make_item, alice):
    item = make_item()
    seen = item.version
    services.work_item_claim(item_id=item.pk, actor=alice)  # someone else, after the page was shown
    resp = admin_client.post(act_url(item), {"action": "cancel", "version": seen, "reason": "x"}, follow=True)
    (msg,) = shown_messages(resp)
    assert "changed meanwhile" in msg and f"version {seen}" in msg
    item.refresh_from_db()
    assert item.state == "ASSIGNED"


def test_act_takes_only_a_post_from_someone_who_may_change_items(admin_client, client, make_item, sam):
    item = make_item()
    assert admin_client.get(act_url(item)).status_code == 405
    sam.is_staff = True
    sam.save()
    from django.contrib.auth.models import Permission

    sam.user_permissions.add(Permission.objects.get(codename="view_workitem"))
    client.force_login(sam)
    assert client.get(page(item)).status_code == 200
    assert "ws-action" not in client.get(page(item)).content.decode()  # no buttons without the permission
    assert client.post(act_url(item), {"action": "cancel", "version": item.version, "reason": "x"}).status_code == 403
    item.refresh_from_db()
    assert item.state == "OFFERED"


# --- the queue page --------------------------------------------------------------------------


def test_the_queue_page_shows_its_figures_from_the_maintained_counters(admin_client, make_item, queue, alice):
    make_item(), make_item(due_at=(timezone.now() - timedelta(minutes=1)).isoformat())
    services.work_item_claim(item_id=make_item().pk, actor=alice)
    html = admin_client.get(f"/admin/workitems/queue/{queue.pk}/change/").content.decode()
    section = html[html.index('id="queue-figures"') :]
    cell = lambda name: re.search(rf"<th scope=\"row\">{name}</th><td class=\"number\">([^<]*)</td>", section).group(1)  # noqa: E731
    assert (cell("open"), cell("offered"), cell("assigned"), cell("breached")) == ("3", "2", "1", "1")
    assert cell("created") == "3"  # the window's figures too
    assert re.search(r'<th scope="row">alice</th><td class="number">1</td>', section)
