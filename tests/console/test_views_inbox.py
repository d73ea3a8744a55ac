"""The worker's inbox: my items by due date, the claimable items of my queues, Get next,
out of office; each change through the service layer, audited under the console channel."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditRecord
from directory.models import Profile
from tests import factories
from workitems import services

pytestmark = pytest.mark.django_db


def _due(hours: float) -> str:
    return (timezone.now() + timedelta(hours=hours)).isoformat()


def _row_ids(html: str, prefix: str) -> list[int]:
    return [int(n) for n in re.findall(rf'<tr data-testid="{prefix}-(\d+)"', html)]


def test_my_items_come_soonest_due_first_with_their_sla_badges(as_user, alice, make_item, svc):
    later = make_item(assignee="alice", due_at=_due(8), title="later")
    sooner = make_item(assignee="alice", due_at=_due(2), title="sooner")
    late = make_item(assignee="alice", due_at=_due(-1), title="late")
    undated = make_item(assignee="alice", title="undated")
    services.work_item_start(item_id=sooner.pk, actor=alice)
    html = as_user(alice).get("/console/inbox").content.decode()
    assert _row_ids(html, "my-item") == [late.pk, sooner.pk, later.pk, undated.pk]
    assert f'data-testid="my-item-sla-{late.pk}">breached<' in html
    assert f'data-testid="my-item-sla-{later.pk}">on track<' in html
    assert f'data-testid="my-item-state-{sooner.pk}">in progress<' in html


def test_the_claimable_list_holds_my_queues_offered_items_and_not_another_teams(
    as_user, alice, bob, team_b, make_item, svc
):
    mine = make_item(priority=90)
    other_queue = factories.queue("team-b-queue", groups=[team_b])
    theirs = factories.item(actor=svc, queue=other_queue)
    html = as_user(alice).get("/console/inbox").content.decode()
    assert _row_ids(html, "claimable-item") == [mine.pk]
    bob_html = as_user(bob).get("/console/inbox").content.decode()
    assert _row_ids(bob_html, "claimable-item") == [theirs.pk]
    assert 'data-testid="my-items-empty"' in bob_html


def test_get_next_claims_the_most_urgent_item_through_claim_next_and_audits_it_as_console(as_user, alice, make_item):
    make_item(priority=10)
    urgent = make_item(priority=95)
    client = as_user(alice)
    response = client.post("/console/inbox/claim-next", {"queue": ""})
    assert response.status_code == 302 and response.headers["Location"] == f"/console/items/{urgent.pk}"
    urgent.refresh_from_db()
    assert urgent.state == "ASSIGNED" and urgent.assignee == alice
    record = AuditRecord.objects.filter(work_item=urgent).order_by("-seq").first()
    assert (record.action, record.channel, record.actor_username) == ("claim", "console", "alice")


def test_get_next_with_nothing_to_claim_says_so(as_user, alice, queue):
    response = as_user(alice).post("/console/inbox/claim-next", {}, follow=True)
    assert response.redirect_chain == [("/console/inbox", 302)]
    assert "Nothing to claim right now." in response.content.decode()


def test_get_next_from_a_queue_that_is_not_mine_claims_nothing_there(as_user, alice, svc, team_b):
    theirs = factories.queue("team-b-queue", groups=[team_b])
    offered = factories.item(actor=svc, queue=theirs)
    response = as_user(alice).post("/console/inbox/claim-next", {"queue": "team-b-queue"}, follow=True)
    assert response.status_code == 200 and response.redirect_chain == [("/console/inbox", 302)]
    assert "Nothing to claim right now." in response.content.decode()  # as claim-next's 204 says
    offered.refresh_from_db()
    assert offered.state == "OFFERED" and offered.assignee is None


def test_out_of_office_with_a_delegate_hands_over_and_back_through_the_availability_commands(
    as_user, alice, carol, make_item
):
    held = make_item(assignee="alice")
    client = as_user(alice)
    page = client.get("/console/inbox").content.decode()
    assert '<option value="carol">carol</option>' in page  # a teammate may stand in
    response = client.post("/console/me/availability", {"away": "on", "delegate": "carol"}, follow=True)
    assert 'data-testid="ooo-state">Out of office, carol stands in<' in response.content.decode()
    profile = Profile.objects.get(user=alice)
    assert profile.is_out_of_office() and profile.delegate == carol
    held.refresh_from_db()
    assert held.assignee == carol
    audit = AuditRecord.objects.filter(action="user.out_of_office").latest("id")
    assert audit.channel == "console" and audit.actor_username == "alice"
    back = client.post("/console/me/availability", {"away": "off"}, follow=True)
    assert 'data-testid="ooo-state">Available<' in back.content.decode()
    profile.refresh_from_db()
    assert not profile.is_out_of_office() and profile.delegate is None


def test_a_delegate_outside_my_teams_is_refused_with_the_commands_message(as_user, alice, bob):
    response = as_user(alice).post("/console/me/availability", {"away": "on", "delegate": "bob"}, follow=True)
    assert "shares no team with alice" in response.content.decode()
    assert not Profile.objects.filter(user=alice, out_of_office_from__isnull=False).exists()


def test_the_inbox_lists_refresh_through_their_fragment(as_user, alice, sam, make_item):
    client = as_user(alice)
    page = client.get("/console/inbox").content.decode()
    assert 'hx-get="/console/inbox/live" hx-trigger="every 5s"' in page
    assert 'data-testid="my-items-empty"' in client.get("/console/inbox/live").content.decode()
    handed = make_item()
    services.work_item_assign(item_id=handed.pk, actor=sam, user="alice")
    fragment = client.get("/console/inbox/live").content.decode()
    assert "<html" not in fragment
    assert _row_ids(fragment, "my-item") == [handed.pk]
