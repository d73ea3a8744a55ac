"""A worker's day in real headless Chromium against a gunicorn of the app (tests/console/conftest.py):
log in, get next, start, complete through the form rendered from the lifecycle's result schema
(a validation error first); another team's queue and items stay out of sight; a change made
meanwhile is "changed meanwhile, reload", not an error page."""

from __future__ import annotations

import re

import pytest

from directory.models import Profile
from tests import factories
from tests.console.browser import *  # noqa: F403 (the browser fixtures)
from tests.console.browser import log_in
from workitems import services

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_login_refuses_a_wrong_password_and_lets_the_worker_in(open_page, console_users):
    visit = open_page()
    visit.goto("/")
    assert visit.path() == "/console/login", "/ sends an anonymous visitor to the console's login"
    visit.by_testid("login-username").fill("alice")
    visit.by_testid("login-password").fill("not-her-password")
    visit.click_and_wait("login-submit")
    assert visit.by_testid("login-error").is_visible()
    log_in(visit, "alice")
    assert visit.by_testid("nav-user").inner_text() == "alice"


def test_get_next_start_and_complete_through_the_result_form(worker_page, review_queue, console_users):
    svc = console_users["svc"]
    urgent = factories.item(actor=svc, queue=review_queue, title="Check the invoice", priority=90)
    factories.item(actor=svc, queue=review_queue, title="Approve the refund", priority=20)
    visit = worker_page

    visit.goto("/console/inbox")
    assert visit.by_testid(f"claimable-item-{urgent.pk}").is_visible()
    assert visit.by_testid("my-items-empty").is_visible()

    visit.click_and_wait("get-next")
    assert visit.path() == f"/console/items/{urgent.pk}", "get next takes the most urgent item"
    assert visit.by_testid("item-state").inner_text().strip().lower() == "assigned"

    visit.click_and_wait("action-start")
    assert visit.by_testid("item-state").inner_text().strip().lower() == "in progress"

    # The form comes from the lifecycle's result schema: a checkbox and a text box.
    approved = visit.by_testid("result-field-approved")
    comment = visit.by_testid("result-field-comment")
    assert approved.get_attribute("type") == "checkbox"
    approved.check()
    comment.fill("ok")  # the schema wants at least 5 characters
    visit.click_and_wait("action-complete")
    errors = visit.by_testid("result-error-comment")
    assert errors.is_visible()
    assert re.search(r"short", errors.inner_text(), re.I), errors.inner_text()
    assert visit.by_testid("item-state").inner_text().strip().lower() == "in progress"
    # The refusal is the item page again (400), which Chromium reports as a failed resource.
    visit.expect_errors(f"status of 400 (Bad Request) [{visit.base_url}/console/items/{urgent.pk}/complete]")

    comment.fill("invoice matches the order")
    visit.click_and_wait("action-complete")
    assert visit.by_testid("item-state").inner_text().strip().lower() == "completed"

    urgent.refresh_from_db()
    assert urgent.state == "COMPLETED"
    assert urgent.result == {"approved": True, "comment": "invoice matches the order"}


def test_a_worker_cannot_see_another_teams_queue(worker_page, review_queue, other_team_queue, console_users):
    svc = console_users["svc"]
    ours = factories.item(actor=svc, queue=review_queue, title="Ours to do")
    theirs = factories.item(actor=svc, queue=other_team_queue, title="Team B only")
    visit = worker_page

    visit.goto("/console/inbox")
    page_text = visit.page.inner_text("body")
    assert "Ours to do" in page_text
    assert "Team B only" not in page_text
    assert other_team_queue.name not in page_text
    options = visit.by_testid("get-next-queue").locator("option").all_inner_texts()
    assert other_team_queue.name not in options and review_queue.name in options

    assert visit.goto(f"/console/queues/{review_queue.name}").status == 200  # while its own queue opens
    for path in (f"/console/queues/{other_team_queue.name}", f"/console/items/{theirs.pk}"):
        response = visit.goto(path)
        assert response.status == 404, path
        assert "Team B only" not in visit.page.inner_text("body")
        # A 404 document is a failed resource to Chromium, and so is the favicon its plain page
        # lacks; nothing else may be in the console.
        visit.expect_errors(f"status of 404 (Not Found) [{visit.base_url}{path}]")
    visit.expect_errors(f"status of 404 (Not Found) [{visit.base_url}/favicon.ico]", required=False)

    # And get next never hands out team B's item.
    visit.goto("/console/inbox")
    visit.click_and_wait("get-next")
    assert visit.path() == f"/console/items/{ours.pk}"
    visit.click_and_wait("nav-inbox")
    visit.click_and_wait("get-next")
    assert visit.path() == "/console/inbox"
    assert "Nothing to claim" in visit.page.inner_text("body")
    theirs.refresh_from_db()
    assert theirs.state == "OFFERED" and theirs.assignee_id is None


def test_a_change_made_meanwhile_says_reload_instead_of_an_error_page(
    worker_page, review_queue, console_server, console_users
):
    item = factories.item(actor=console_users["svc"], queue=review_queue, title="Changes under her feet")
    item = services.work_item_claim(item_id=item.pk, actor=console_users["alice"])
    visit = worker_page
    visit.goto(f"/console/items/{item.pk}")
    shown = int(visit.by_testid("item-version").inner_text())

    # A supervisor escalates it through the REST API while alice has the page open.
    with console_server.api("sam") as api:
        resp = api.post(f"/workitems/{item.pk}/escalate", json={"reason": "customer called"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["version"] > shown

    visit.click_and_wait("action-start")
    assert visit.by_testid("stale-message").is_visible()
    assert "changed meanwhile" in visit.by_testid("stale-message").inner_text()
    item.refresh_from_db()
    assert item.state == "ASSIGNED", "nothing was done with the old version"
    visit.expect_errors(f"status of 409 (Conflict) [{visit.base_url}/console/items/{item.pk}/start]")

    visit.click_and_wait("stale-reload")
    assert int(visit.by_testid("item-version").inner_text()) == item.version
    visit.click_and_wait("action-start")
    assert visit.by_testid("item-state").inner_text().strip().lower() == "in progress"


def test_out_of_office_with_a_delegate_and_back_and_no_dashboard_for_a_worker(worker_page, console_users, carol):
    visit = worker_page
    visit.goto("/console/")
    assert visit.path() == "/console/inbox", "a worker's home is the inbox"
    assert visit.by_testid("nav-dashboard").count() == 0

    visit.by_testid("ooo-delegate").select_option("carol")
    visit.click_and_wait("ooo-toggle")
    assert "Out of office" in visit.by_testid("ooo-state").inner_text()
    assert "carol" in visit.by_testid("ooo-state").inner_text()
    profile = Profile.objects.get(user=console_users["alice"])
    assert profile.is_out_of_office() and profile.delegate_id == carol.pk

    visit.click_and_wait("ooo-toggle")
    assert visit.by_testid("ooo-state").inner_text().strip() == "Available"
    profile.refresh_from_db()
    assert not profile.is_out_of_office()
