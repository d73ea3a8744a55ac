"""Every main page of the console in real headless Chromium, against a gunicorn of the app:
no console error (Chromium reports CSP violations, failed resources and uncaught exceptions
there), no request that leaves 127.0.0.1, a Content-Security-Policy without 'unsafe-inline'
that does stop an injected inline script; a screenshot of each (login, inbox, item page,
dashboard, queue page) under artifacts/screenshots/ (tests/console/browser.py SCREENSHOTS)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests import factories
from tests.console.browser import *  # noqa: F403 (the browser fixtures)
from tests.console.browser import log_in
from workitems import services

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def busy_day(review_queue, other_team_queue, console_users):
    """A morning's worth of items: alice holds one in progress and one assigned and has done two;
    more wait in her team's queue (one overdue, one due soon); team B has its own."""
    svc, alice, bob = console_users["svc"], console_users["alice"], console_users["bob"]
    now = timezone.now()
    held = factories.item(
        actor=svc,
        queue=review_queue,
        title="Check invoice INV-2291 against the order",
        description="The supplier's invoice differs from the purchase order by 4%.",
        priority=80,
        due_at=(now + timedelta(hours=3)).isoformat(),
        context_data={"supplier": "ACME Ltd", "amount": "12,480.00 EUR", "order": "PO-7731"},
    )
    held = services.work_item_claim(item_id=held.pk, actor=alice)
    held = services.work_item_start(item_id=held.pk, actor=alice)
    second = factories.item(actor=svc, queue=review_queue, title="Approve refund R-118", priority=60)
    services.work_item_claim(item_id=second.pk, actor=alice)
    waiting = [
        ("Verify new supplier bank details", 90, now - timedelta(hours=1)),
        ("Review contract renewal", 70, now + timedelta(minutes=20)),
        ("Match credit note CN-77", 50, now + timedelta(days=2)),
        ("Archive settled claims", 20, None),
    ]
    for title, priority, due in waiting:
        extra = {"due_at": due.isoformat()} if due else {}
        factories.item(actor=svc, queue=review_queue, title=title, priority=priority, **extra)
    for title in ("Check invoice INV-2280", "Approve refund R-117"):  # done already: throughput, SLA met
        done = factories.item(actor=svc, queue=review_queue, title=title, due_at=(now + timedelta(hours=1)).isoformat())
        services.work_item_claim(item_id=done.pk, actor=alice)
        services.work_item_start(item_id=done.pk, actor=alice)
        services.work_item_complete(item_id=done.pk, actor=alice, result={"approved": True, "comment": "as ordered"})
    theirs = factories.item(actor=svc, queue=other_team_queue, title="Team B's shipment check", priority=40)
    services.work_item_claim(item_id=theirs.pk, actor=bob)
    return {"held": held}


def _show(visit, path: str, *, ready: str, screenshot: str, settle_ms: int = 500) -> None:
    """Open `path`, check its policy, let it finish what it loads after the document (scripts,
    htmx polls, charts), see `ready` (a data-testid) on it, check it is clean, and keep a screenshot."""
    response = visit.goto(path)
    assert response.status == 200, path
    policy = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy or "default-src 'self'" in policy, policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, policy
    visit.page.wait_for_load_state("networkidle")
    visit.page.wait_for_timeout(settle_ms)
    assert visit.by_testid(ready).first.is_visible(), f"{ready} on {path}"
    visit.assert_clean()
    visit.screenshot(screenshot)


def test_every_main_page_is_clean_and_has_its_screenshot(open_page, busy_day, review_queue):
    held = busy_day["held"].pk
    anonymous = open_page()
    _show(anonymous, "/console/login", ready="login-form", screenshot="login")

    worker = log_in(open_page(), "alice")
    _show(worker, "/console/inbox", ready=f"my-item-{held}", screenshot="inbox")
    _show(worker, f"/console/items/{held}", ready="result-form", screenshot="item")

    supervisor = log_in(open_page(), "sam")
    # 3.5 s: a poll of every live fragment has come back by then (and was clean too).
    _show(supervisor, "/console/", ready=f"tile-{review_queue.name}", screenshot="dashboard", settle_ms=3_500)
    drawn = supervisor.page.eval_on_selector_all("canvas[data-chart]", "cs => cs.map(c => c.dataset.drawn || '0')")
    assert drawn and all(int(n) >= 1 for n in drawn), f"charts drawn (console.js): {drawn}"
    _show(supervisor, f"/console/queues/{review_queue.name}", ready="queue-title", screenshot="queue")

    for visit in (anonymous, worker, supervisor):
        assert visit.requests, "the recorder saw the pages' requests"
        assert all(url.startswith(visit.base_url + "/") for url in visit.requests if url.startswith("http"))


def test_the_policy_stops_an_injected_inline_script_and_the_console_shows_it(worker_page):
    """The harness sees what it must: an inline script put into a console page does not run
    (no 'unsafe-inline'), and Chromium's report of the violation is a console error."""
    visit = worker_page
    visit.goto("/console/inbox")
    visit.page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__injected = true";
                   document.body.appendChild(s); }"""
    )
    visit.page.wait_for_timeout(200)
    assert visit.page.evaluate("() => window.__injected === undefined")
    assert any("Content Security Policy" in e for e in visit.console_errors), visit.console_errors
    visit.expect_errors("Content Security Policy")


@pytest.mark.parametrize(
    ("path", "ready"),
    [
        ("/redoc/", ".menu-content, [role=navigation]"),
        ("/swagger/", "#swagger-ui .opblock"),
        ("/admin/login/", "#login-form"),
    ],
)
def test_the_api_viewers_and_the_admin_fetch_nothing_from_outside(open_page, path, ready):
    """ReDoc, Swagger UI and the admin are served offline too: their fonts, bundles and logos
    come from 127.0.0.1 (nothing else is asked for) and they run without a console error."""
    visit = open_page()
    assert visit.goto(path).status == 200
    visit.page.wait_for_selector(ready, timeout=20_000)  # the viewer has rendered the document
    visit.page.wait_for_load_state("networkidle")
    assert len(visit.requests) > 1, visit.requests
    visit.assert_clean()
