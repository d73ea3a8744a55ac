"""Console login, roles, the / redirect, CSRF and the Content-Security-Policy."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests import factories

pytestmark = pytest.mark.django_db


def _login(client: Client, username: str, password: str):
    page = client.get("/console/login")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    return client.post("/console/login", {"username": username, "password": password, "csrfmiddlewaretoken": token})


@pytest.mark.parametrize("role", ["worker", "supervisor", "admin"])
def test_workers_supervisors_and_admins_log_in_without_being_staff(role):
    user = factories.user(f"person-{role}", roles=[role])
    assert not user.is_staff
    client = Client(enforce_csrf_checks=True)
    response = _login(client, user.username, f"pw-{user.username}")
    assert response.status_code == 302 and response.headers["Location"] == "/console/"
    landing = client.get("/console/", follow=True)
    assert landing.status_code == 200
    # workers land on their inbox, supervisors and admins on the dashboard
    expected = [("/console/inbox", 302)] if role == "worker" else []
    assert landing.redirect_chain == expected
    assert f'data-testid="nav-user">{user.username}<' in landing.content.decode()


def test_a_service_client_and_a_wrong_password_are_refused(svc, alice):
    client = Client(enforce_csrf_checks=True)
    refused = _login(client, "svc", "pw-svc")
    assert refused.status_code == 200 and 'data-testid="login-error"' in refused.content.decode()
    assert "no console role" in refused.content.decode()
    wrong = _login(client, "alice", "not-her-password")
    assert wrong.status_code == 200 and 'data-testid="login-error"' in wrong.content.decode()
    assert client.get("/console/inbox").status_code == 302  # still anonymous


def test_root_redirects_to_the_console_and_anonymous_callers_to_the_login(alice):
    client = Client()
    root = client.get("/")
    assert root.status_code == 302 and root.headers["Location"] == "/console/"
    for path in ("/console/", "/console/inbox", "/console/items/1", "/console/queues/x", "/console/live/tiles"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/console/login?next="), path


def test_a_poll_after_the_session_ended_sends_the_page_to_the_login(db):
    response = Client().get("/console/live/tiles", headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/console/login"


def test_a_form_post_without_the_csrf_token_is_refused(as_user, alice, make_item):
    item = make_item()
    client = as_user(alice, csrf=True)
    refused = client.post(f"/console/items/{item.pk}/claim", {"version": item.version})
    assert refused.status_code == 403
    item.refresh_from_db()
    assert item.state == "OFFERED"
    page = client.get("/console/inbox").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    taken = client.post(f"/console/items/{item.pk}/claim", {"version": item.version, "csrfmiddlewaretoken": token})
    assert taken.status_code == 302
    item.refresh_from_db()
    assert item.state == "ASSIGNED" and item.assignee == alice


def test_every_form_of_the_console_carries_the_csrf_token(as_user, alice, sam, make_item):
    item = make_item(due_at="2020-01-01T00:00:00Z")
    pages = [(alice, "/console/inbox"), (alice, f"/console/items/{item.pk}"), (sam, "/console/")]
    for user, path in pages:
        html = as_user(user).get(path).content.decode()
        posts = re.findall(r'<form method="post".*?</form>', html, flags=re.S)
        assert posts, path
        for form in posts:
            assert 'name="csrfmiddlewaretoken"' in form, (path, form[:200])


def test_logout_is_a_post(as_user, alice):
    client = as_user(alice)
    assert client.get("/console/logout").status_code == 405
    assert client.post("/console/logout").status_code == 302
    assert client.get("/console/inbox").status_code == 302


def test_console_pages_send_a_content_security_policy_without_unsafe_inline(as_user, alice, sam, make_item):
    item = make_item()
    responses = [
        Client().get("/console/login"),
        as_user(alice).get("/console/inbox"),
        as_user(alice).get(f"/console/items/{item.pk}"),
        as_user(sam).get("/console/"),
        as_user(sam).get("/console/live/tiles"),
        as_user(sam).get("/console/queues/team-a-queue"),
    ]
    for response in responses:
        assert response.status_code == 200
        policy = response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "script-src 'self'" in policy and "style-src 'self'" in policy and "default-src 'self'" in policy
        html = response.content.decode()
        # no inline script (only JSON data blocks), no style element or attribute, nothing off-site
        for script in re.findall(r"<script([^>]*)>", html):
            assert "src=" in script or 'type="application/json"' in script, script
        assert "<style" not in html and " style=" not in html
        assert "http://" not in html.replace("http://testserver", "") and "https://" not in html


def test_redoc_is_served_offline(db):
    response = Client().get("/redoc/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "fonts.googleapis" not in html and "fonts.gstatic" not in html and "https://" not in html
    assert '<script src="/redoc/redoc.standalone.js">' in html
    assert "<script>" not in html  # no inline script
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    bundle = Client().get("/redoc/redoc.standalone.js")
    assert bundle.status_code == 200 and bundle.headers["Content-Type"].startswith("application/javascript")
    code = bundle.content.decode()
    assert "Redoc" in code and "cdn.redoc.ly" not in code  # the sidebar's logo no longer comes from a CDN
    swagger = Client().get("/swagger/")
    assert swagger.status_code == 200 and "<script>" not in swagger.content.decode()
    script = Client().get("/swagger/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_favicon_is_the_consoles(db):
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response.headers["Location"] == "/static/console/favicon.svg"


def test_the_vendored_assets_are_served(db, settings):
    # whitenoise serves STATIC_ROOT (collectstatic) in production; here it finds the app's files
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    for path in (
        "/static/console/vendor/htmx-2.0.11.min.js",
        "/static/console/vendor/chart-4.6.1.umd.min.js",
        "/static/console/console.js",
        "/static/console/console.css",
    ):
        response = Client().get(path)
        assert response.status_code == 200, path
