"""Start-up refuses a signing key anyone could know (issue 10, item 1).

Each case starts a fresh process (`manage.py check`, or the WSGI application gunicorn
loads) with DEBUG off and outside the test suite (no PYTEST_VERSION), as a deployment runs.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from config import keys

ROOT = Path(__file__).resolve().parents[2]
STRONG = secrets.token_urlsafe(50)
CHECK = [sys.executable, "manage.py", "check"]
WSGI = [sys.executable, "-c", "from config.wsgi import application"]


def start(argv=CHECK, **variables: str) -> subprocess.CompletedProcess:
    """A deployment's process: DEBUG off, not under pytest, only `variables` of the key family set."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTEST_VERSION", "DEBUG") and not k.startswith(("SECRET_KEY", "JWT_SIGNING_KEY"))
    }
    env.update({"DATABASE_URL": "", "DJANGO_SETTINGS_MODULE": "config.settings", **variables})
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def refused(proc: subprocess.CompletedProcess, variable: str, why: str) -> bool:
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    return (
        proc.returncode != 0
        and last.startswith(f"django.core.exceptions.ImproperlyConfigured: {variable} ")
        and why in last
    )


@pytest.mark.parametrize(
    ("variables", "why"),
    [
        ({}, "is not set"),
        ({"SECRET_KEY": ""}, "is not set"),
        ({"SECRET_KEY": keys.DEV_SECRET_KEY}, "published key"),
        ({"SECRET_KEY": "compose-local-only-insecure-secret-key"}, "published key"),
        ({"SECRET_KEY": "s3cret"}, "too short (6 characters"),
        ({"SECRET_KEY": STRONG[:49]}, "too short (49 characters"),
        ({"SECRET_KEY": "django-insecure-" + STRONG}, "startproject"),
        ({"SECRET_KEY": "ab" * 40}, "too few distinct characters (2"),
    ],
    ids=["unset", "empty", "dev-key", "old-compose-key", "short", "49-chars", "startproject", "two-letters"],
)
def test_start_up_refuses_a_missing_known_or_weak_secret_key(variables, why):
    proc = start(**variables)
    assert refused(proc, "SECRET_KEY", why), proc.stderr[-2000:]
    assert "SECRET_KEY_FILE" in proc.stderr  # the message says how to set it


def test_the_refusal_holds_for_a_key_read_from_a_file_and_for_the_wsgi_application(tmp_path):
    key_file = tmp_path / "secret_key"
    key_file.write_text(keys.DEV_SECRET_KEY + "\n")
    assert refused(start(SECRET_KEY_FILE=str(key_file)), "SECRET_KEY", "published key")
    # what gunicorn imports: the web process does not come up either
    assert refused(start(WSGI), "SECRET_KEY", "is not set")
    assert refused(start(WSGI, SECRET_KEY=keys.DEV_SECRET_KEY), "SECRET_KEY", "published key")


@pytest.mark.parametrize(
    ("jwt_key", "why"),
    [(keys.DEV_SECRET_KEY, "published key"), ("jwt", "too short"), ("x" * 60, "too few distinct")],
    ids=["dev-key", "short", "one-letter"],
)
def test_start_up_refuses_a_known_or_weak_jwt_signing_key(jwt_key, why):
    proc = start(SECRET_KEY=STRONG, JWT_SIGNING_KEY=jwt_key)
    assert refused(proc, "JWT_SIGNING_KEY", why), proc.stderr[-2000:]


def test_a_strong_key_starts(tmp_path):
    for proc in (
        start(SECRET_KEY=STRONG),
        start(SECRET_KEY=STRONG, JWT_SIGNING_KEY=secrets.token_urlsafe(50)),
    ):
        assert proc.returncode == 0, proc.stderr[-2000:]
    key_file = tmp_path / "secret_key"
    key_file.write_text(STRONG + "\n")  # a mounted secret's trailing newline is not part of the key
    proc = start(SECRET_KEY_FILE=str(key_file))
    assert proc.returncode == 0 and "no issues" in proc.stdout, proc.stderr[-2000:]


def test_make_run_and_the_test_suite_keep_the_development_key():
    """DEBUG (make run's RUN_ENV) starts without a key; so does a process the suite starts."""
    printed = [sys.executable, "-c", "from django.conf import settings; print(settings.SECRET_KEY)"]
    proc = start(printed, DEBUG="true")
    assert proc.returncode == 0 and proc.stdout.strip() == keys.DEV_SECRET_KEY, proc.stderr[-2000:]
    proc = start(printed, PYTEST_VERSION=os.environ["PYTEST_VERSION"])
    assert proc.returncode == 0 and proc.stdout.strip() == keys.DEV_SECRET_KEY, proc.stderr[-2000:]
    # and DEBUG honours a key that is set
    proc = start(printed, DEBUG="true", SECRET_KEY=STRONG)
    assert proc.stdout.strip() == STRONG, proc.stderr[-2000:]
