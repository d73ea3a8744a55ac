"""Browser fixtures for the console's browser tests (tests/console/test_browser_*.py), which
take them with `from tests.console.browser import *` (the console's shared fixtures stay in
tests/console/conftest.py).

The app is served as users run it: a gunicorn process with config/gunicorn.conf.py, on a
free port of 127.0.0.1, against this test run's PostgreSQL database, with the static files
collected and served by whitenoise, DEBUG off and a real secret key. Debian's Chromium
(`shutil.which("chromium")`) is driven headless by Playwright for Python; Playwright's own
browser download is never used.

Data is seeded through the factories (the service layer) in the test process and must be
committed to be seen by the server, so every browser test runs on `transactional_db`
(pytest-django empties the tables after it). The server starts once per session (per xdist
worker), the browser once per test module; each page gets a fresh browser context.

Every page a test opens records its console errors (Chromium reports CSP violations and
failed resources there), its uncaught exceptions, every request URL and its main-frame
navigations; at teardown it must have no console error and no request that left 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import functools
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password

from tests import factories
from tests.processes import this_test_database_url

__all__ = [
    "browser",
    "console_server",
    "console_users",
    "open_page",
    "other_team_queue",
    "playwright_driver",
    "review_queue",
    "supervisor_page",
    "worker_page",
]

ROOT = Path(__file__).resolve().parents[2]
# CI keeps this folder as an artefact; the README ("Console") names it. BROWSER_SCREENSHOTS moves it.
SCREENSHOTS = Path(os.environ.get("BROWSER_SCREENSHOTS") or ROOT / "artifacts" / "screenshots")
VIEWPORT = {"width": 1280, "height": 800}
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOCAL_HOST, 0))
        return s.getsockname()[1]


def _collect_static(env: dict) -> None:
    """`manage.py collectstatic` into STATIC_ROOT, as the Docker image does before gunicorn
    starts: whitenoise serves only collected files outside DEBUG. A file lock keeps two xdist
    workers (or two runs on one checkout) from copying over each other."""
    lock_path = Path(settings.STATIC_ROOT) / ".collectstatic.lock"  # inside the gitignored folder
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 0, f"collectstatic failed: {result.stderr[-3000:]}"


@dataclass
class ConsoleServer:
    """The gunicorn process serving the app for the browser."""

    url: str
    proc: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def token(self, username: str) -> str:
        """A JWT access token for `username` (password pw-<username>, as the factories make it)."""
        resp = httpx.post(
            f"{self.url}/api/v1/auth/token",
            json={"username": username, "password": "pw-" + username},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["access"]

    def api(self, username: str) -> httpx.Client:
        """An HTTP client of the REST API, authenticated as `username`."""
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {self.token(username)}"}, timeout=30
        )


@pytest.fixture(scope="session")
def console_server(django_db_setup, django_db_blocker, tmp_path_factory) -> ConsoleServer:
    """gunicorn (two workers, config/gunicorn.conf.py) on a free port, against the test database."""
    env = {
        **os.environ,
        "DATABASE_URL": this_test_database_url(),
        # Connections closed after each request: pytest-django empties the tables between
        # tests, and an idle server connection must not hold that up.
        "DB_CONN_MAX_AGE": "0",
        "REDIS_URL": settings.REDIS_URL,
        # Throttle counts and cached entries of its own: the Redis server is shared with the
        # rest of the run (and other runs), whose clients also come from 127.0.0.1.
        "CACHE_KEY_PREFIX": f"browser-{secrets.token_hex(8)}",
        "PYTHONPATH": str(ROOT),
        "DEBUG": "false",
        # A deployment's secret: without PYTEST_VERSION the settings refuse a weak or missing key.
        "SECRET_KEY": secrets.token_urlsafe(50),
        "LOG_FORMAT": "plain",
    }
    for name in (
        *("PYTEST_VERSION", "PYTEST_XDIST_WORKER", "DJANGO_ALLOW_ASYNC_UNSAFE", "WORKSTREAM_INPROCESS_BEAT"),
        *("PROMETHEUS_MULTIPROC_DIR", "SECRET_KEY_FILE", "CELERY_TASK_ALWAYS_EAGER", "CACHE_BACKEND"),
    ):
        env.pop(name, None)
    _collect_static(env)

    port = _free_port()
    log_path = tmp_path_factory.mktemp("console-server") / "gunicorn.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "config.wsgi:application"),
                *("-c", "config/gunicorn.conf.py", "-w", "2", "--bind", f"{LOCAL_HOST}:{port}"),
                *("--access-logfile", "-", "--timeout", "60"),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = ConsoleServer(url=f"http://{LOCAL_HOST}:{port}", proc=proc, log_path=log_path)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"gunicorn did not start: {server.log_tail()}")
        try:
            if httpx.get(f"{server.url}/health/live", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def playwright_driver():
    """Playwright's sync API, for one test module at a time.

    While it runs, its asyncio loop counts as running in this thread: Django's ORM would
    refuse to run (SynchronousOnlyOperation) and `asyncio.run` elsewhere in the suite would
    fail. So it lives only as long as a browser module (not the session), with Django told
    that the loop is not one of its own for that long (the workaround Playwright documents).
    """
    from playwright.sync_api import sync_playwright

    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            yield p
    finally:
        if before is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture(scope="module")
def browser(playwright_driver):
    """Debian's headless Chromium (the `chromium` package), never a browser Playwright downloads."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("the browser tests need Debian's chromium on PATH: apt-get install chromium chromium-driver")
    browser = playwright_driver.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class Visit:
    """One browser page with what it saw: console errors, uncaught errors, requests, navigations."""

    page: object  # playwright.sync_api.Page
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    navigations: list[str] = field(default_factory=list)
    failed_responses: list[str] = field(default_factory=list)
    expected_errors: list[str] = field(default_factory=list)
    required_errors: list[str] = field(default_factory=list)
    server_log: object = None  # () -> the server's log tail, for a 5xx

    def goto(self, path: str):
        response = self.page.goto(self.base_url + path)
        if response is not None and response.status >= 500 and self.server_log is not None:
            print(f"{response.status} for {path}; the server's log:\n{self.server_log()}")
        return response

    def path(self) -> str:
        return urlsplit(self.page.url).path

    def by_testid(self, testid: str):
        return self.page.get_by_test_id(testid)

    def click_and_wait(self, testid: str) -> None:
        """Click an element that submits a form or follows a link, and wait for the new page."""
        with self.page.expect_navigation():
            self.by_testid(testid).click()

    def screenshot(self, name: str) -> Path:
        """A PNG of the viewport (1280x800) under SCREENSHOTS, kept by CI as an artefact."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def off_host_requests(self) -> list[str]:
        """Requests that went anywhere but 127.0.0.1 (data: and blob: URLs stay in the page)."""
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about"):
                continue
            if parts.scheme not in ("http", "https", "ws", "wss") or parts.hostname != LOCAL_HOST:
                out.append(url)
        return out

    def expect_errors(self, fragment: str, *, required: bool = True) -> None:
        """Console errors a test causes on purpose: those containing `fragment` (e.g. the URL of a
        page the user may not see, whose 404 Chromium reports as a failed resource) are left
        out of the check at teardown; unless not `required`, one at least must have happened."""
        self.expected_errors.append(fragment)
        if required:
            self.required_errors.append(fragment)

    def assert_clean(self) -> None:
        for fragment in self.required_errors:
            assert any(fragment in e for e in self.console_errors), (
                f"expected a console error with {fragment!r}: {self.console_errors}"
            )
        unexpected = [e for e in self.console_errors if not any(f in e for f in self.expected_errors)]
        server = self.server_log() if self.server_log and any(r.startswith("5") for r in self.failed_responses) else ""
        assert unexpected == [], f"console errors: {unexpected}; responses >= 400: {self.failed_responses}\n{server}"
        assert self.off_host_requests() == [], f"requests that left {LOCAL_HOST}: {self.off_host_requests()}"

    def _on_console(self, msg) -> None:
        if msg.type == "error":
            # The page it happened on and the resource it names (a failed favicon names only itself).
            self.console_errors.append(f"{self.page.url}: {msg.text} [{msg.location.get('url', '')}]")


@pytest.fixture
def open_page(browser, console_server, transactional_db):
    """`open_page()` → a Visit in a fresh browser context (its own cookies), recording what it saw.
    Each is checked at teardown: no console error, no request off 127.0.0.1."""
    contexts, visits = [], []

    def open_() -> Visit:
        context = browser.new_context(viewport=VIEWPORT, base_url=console_server.url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        visit = Visit(page=page, base_url=console_server.url, server_log=console_server.log_tail)
        page.on("console", visit._on_console)
        page.on("pageerror", lambda exc: visit.console_errors.append(f"{page.url}: uncaught {exc}"))
        page.on("request", lambda req: visit.requests.append(req.url))
        page.on("response", lambda r: r.status >= 400 and visit.failed_responses.append(f"{r.status} {r.url}"))
        page.on("framenavigated", lambda frame: frame == page.main_frame and visit.navigations.append(frame.url))
        visits.append(visit)
        return visit

    yield open_
    for context in contexts:
        context.close()
    for visit in visits:
        visit.assert_clean()


@functools.cache
def _server_password_hash(password: str) -> str:
    # The test process hashes with MD5 (tests/conftest.py); the server keeps the production
    # hashers, which do not read MD5. One PBKDF2 hash per password and session.
    return make_password(password, hasher="pbkdf2_sha256")


def server_login_ready(user) -> None:
    """Give `user` a password hash the server verifies (pw-<username>, as the factories make it)."""
    get_user_model().objects.filter(pk=user.pk).update(password=_server_password_hash("pw-" + user.username))


def log_in(visit: Visit, username: str) -> Visit:
    """Log in through the console's login form and land on the page it sends the user to."""
    visit.goto("/console/login")
    visit.by_testid("login-username").fill(username)
    visit.by_testid("login-password").fill("pw-" + username)
    visit.click_and_wait("login-submit")
    assert not visit.path().startswith("/console/login"), f"login as {username} failed: {visit.page.url}"
    return visit


@pytest.fixture
def console_users(alice, bob, sam, svc):
    """The personas of tests/conftest.py, able to log in to the server."""
    for user in (alice, bob, sam, svc):
        server_login_ready(user)
    return {"alice": alice, "bob": bob, "sam": sam, "svc": svc}


@pytest.fixture
def worker_page(open_page, console_users) -> Visit:
    """alice (a worker of team A), logged in."""
    return log_in(open_page(), "alice")


@pytest.fixture
def supervisor_page(open_page, console_users) -> Visit:
    """sam (a supervisor), logged in."""
    return log_in(open_page(), "sam")


RESULT_SCHEMA = {
    "type": "object",
    "required": ["approved", "comment"],
    "properties": {
        "approved": {"type": "boolean", "title": "Approved"},
        "comment": {"type": "string", "title": "Comment", "minLength": 5},
    },
}


@pytest.fixture
def review_queue(team_a):
    """Team A's queue with a lifecycle whose `complete` needs a result (RESULT_SCHEMA)."""
    lifecycle = factories.lifecycle("review-result", result_schema=RESULT_SCHEMA)
    return factories.queue("team-a-review", groups=[team_a], lifecycle=lifecycle)


@pytest.fixture
def other_team_queue(team_b):
    """Team B's queue: alice (team A) must not see it."""
    return factories.queue("team-b-queue", groups=[team_b])
