"""The supervisor's dashboard is live, in real headless Chromium against a gunicorn of the app: an
item created through the REST API shows in its queue's tile and in the breach list within 5 s,
with no reload of the page (no navigation, the same document)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests import factories
from tests.console.browser import *  # noqa: F403 (the browser fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_WITHIN_MS = 5_000  # the promise: a change is on the dashboard within 5 s


def test_an_item_created_through_the_api_appears_without_a_reload(
    supervisor_page, review_queue, console_server, console_users
):
    factories.item(actor=console_users["svc"], queue=review_queue, title="Already waiting")
    visit = supervisor_page
    assert visit.goto("/console/").status == 200
    tile = f"tile-{review_queue.name}"
    expect(visit.by_testid(f"{tile}-open")).to_have_text("1")
    expect(visit.by_testid(f"{tile}-overdue")).to_have_text("0")
    expect(visit.by_testid("breach-list-empty")).to_be_visible()
    # A reload or a navigation would lose this mark and add a main-frame navigation.
    visit.page.evaluate("() => { window.__sameDocument = 'still here'; }")
    navigations = list(visit.navigations)

    overdue = (timezone.now() - timedelta(minutes=10)).isoformat()
    with console_server.api("svc") as api:
        resp = api.post(
            "/workitems", json=factories.item_body(review_queue, title="Fresh from the API", due_at=overdue)
        )
    assert resp.status_code == 201, resp.text
    created_at = time.monotonic()
    item_id = resp.json()["id"]

    expect(visit.by_testid(f"{tile}-open")).to_have_text("2", timeout=LIVE_WITHIN_MS)
    expect(visit.by_testid(f"{tile}-overdue")).to_have_text("1", timeout=LIVE_WITHIN_MS)
    expect(visit.by_testid(f"breach-row-{item_id}")).to_be_visible(timeout=LIVE_WITHIN_MS)
    seen_after = time.monotonic() - created_at
    assert seen_after <= LIVE_WITHIN_MS / 1000, seen_after
    assert "Fresh from the API" in visit.by_testid(f"breach-row-{item_id}").inner_text()

    assert visit.page.evaluate("() => window.__sameDocument") == "still here", "the page was reloaded"
    assert visit.navigations == navigations, f"the page navigated: {visit.navigations}"
    assert visit.path() == "/console/"
