"""/metrics is not public (issue 10, item 10): with METRICS_TOKEN set a scrape must send it as a
bearer token; without a token the endpoint is closed unless METRICS_PUBLIC, which defaults to on
only under DEBUG and the test suite. (Through gunicorn: tests/config/test_metrics_multiprocess.py.)"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = secrets.token_urlsafe(32)
PROBLEM = "application/problem+json"


def problem(kind: str, title: str, status: int, detail: str) -> dict:
    """What api.problems.problem_body writes for `kind` (KINDS' title and status)."""
    return {
        "type": f"https://workstream.dev/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "/metrics",
    }


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_PUBLIC = False
    return TOKEN


def scrape(client, authorization: str | None = None, path: str = "/metrics"):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    return client.get(path, **headers)


def is_metrics(resp) -> bool:
    return (
        resp.status_code == 200
        and resp["Content-Type"].startswith("text/plain")
        and b"workitem_transitions_total" in resp.content
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-token",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        TOKEN,
        f"Api-Key {TOKEN}",
        "Bearer tökén-ü",
        "Bearer " + "A" * 10_000,
    ],
    ids=[
        "none",
        "empty",
        "scheme-only",
        "scheme-space",
        "wrong",
        "longer",
        "shorter",
        "basic",
        "token-scheme",
        "bare",
        "api-key",
        "non-ascii",
        "huge",
    ],
)
def test_a_scrape_without_the_token_is_401(client, token, authorization):
    resp = scrape(client, authorization)
    assert resp.status_code == 401, resp.content[:200]
    assert resp["Content-Type"] == PROBLEM
    assert resp["WWW-Authenticate"] == 'Bearer realm="metrics"'
    body = resp.json()
    assert body == problem("unauthorized", "Authentication required", 401, body["detail"])
    assert "METRICS_TOKEN" in body["detail"]
    assert b"workitem_transitions_total" not in resp.content and TOKEN not in resp.content.decode()


@pytest.mark.django_db
def test_the_token_in_the_query_string_or_a_cookie_does_not_count(client, token):
    assert scrape(client, path=f"/metrics?token={TOKEN}").status_code == 401
    assert scrape(client, path=f"/metrics?access_token={TOKEN}").status_code == 401
    client.cookies["token"] = TOKEN
    assert scrape(client).status_code == 401


@pytest.mark.django_db
# ids name the scheme only: the token is random per process, and pytest-xdist's workers must
# collect the same test ids.
@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_token_as_a_bearer_token_reads_the_metrics(client, token, scheme):
    assert is_metrics(scrape(client, f"{scheme} {TOKEN}"))


@pytest.mark.django_db
def test_a_token_is_required_even_when_metrics_are_also_marked_public(client, token, settings):
    settings.METRICS_PUBLIC = True
    assert scrape(client).status_code == 401
    assert is_metrics(scrape(client, f"Bearer {TOKEN}"))


@pytest.mark.django_db
def test_without_a_token_metrics_are_closed_unless_public(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_PUBLIC = False
    for authorization in (None, f"Bearer {TOKEN}", "Bearer "):
        resp = scrape(client, authorization)
        assert resp.status_code == 403 and resp["Content-Type"] == PROBLEM
        detail = resp.json()["detail"]
        assert resp.json() == problem("not-allowed", "Not allowed", 403, detail)
        assert "METRICS_TOKEN" in detail and "METRICS_PUBLIC=true" in detail
    settings.METRICS_PUBLIC = True
    assert is_metrics(scrape(client))


def settings_of(*names: str, **variables: str) -> subprocess.CompletedProcess:
    """A deployment's process (DEBUG off, not under pytest) printing settings `names`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTEST_VERSION", "DEBUG") and not k.startswith(("METRICS_", "SECRET_KEY"))
    }
    env.update(
        {
            "DATABASE_URL": "",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            **variables,
        }
    )
    code = f"from django.conf import settings; print(*[repr(getattr(settings, n)) for n in {names!r}])"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_the_defaults_close_metrics_outside_debug_and_open_them_under_debug(tmp_path):
    def public(**variables) -> str:
        proc = settings_of("METRICS_PUBLIC", "METRICS_TOKEN", **variables)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.strip()

    assert public() == "False ''"
    assert public(METRICS_PUBLIC="true") == "True ''"
    assert public(DEBUG="true") == "True ''"  # make run
    assert public(DEBUG="true", METRICS_PUBLIC="false") == "False ''"
    assert public(METRICS_TOKEN=TOKEN) == f"False '{TOKEN}'"
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN + "\n")
    assert public(METRICS_TOKEN_FILE=str(token_file)) == f"False '{TOKEN}'"


@pytest.mark.parametrize("weak", ["x", "metrics", TOKEN[:31]], ids=["one-char", "a-word", "31-chars"])
def test_start_up_refuses_a_short_metrics_token(weak):
    proc = settings_of("METRICS_TOKEN", METRICS_TOKEN=weak)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: METRICS_TOKEN is too short"), last
    assert TOKEN[:31] not in last  # the error does not print the secret
