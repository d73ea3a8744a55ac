"""/metrics shows the whole server under gunicorn with several workers (config/gunicorn.conf.py,
prometheus_client's multiprocess mode), and this process's registry without it."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import this_test_database_url

ROOT = Path(__file__).resolve().parents[2]
COUNTER = "django_http_responses_total_by_status_view_method_total"
LIVE = {"status": "200", "view": "health-live", "method": "GET"}
# The servers here run with a scrape token, as a deployment does (tests/config/test_metrics_auth.py).
METRICS_TOKEN = secrets.token_urlsafe(32)
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, headers: dict | None = None) -> tuple[int, str]:
    resp = httpx.get(url, headers=headers, timeout=30)  # a loaded machine answers slowly; the test is about the counts
    return resp.status_code, resp.text


def sample(text: str, name: str, labels: dict) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def plant_stale_counter(directory: Path, value: float) -> None:
    """A counter file as a worker of an earlier run would have left it."""
    labels = ["status", "view", "method"]
    key = mmap_key(
        "django_http_responses_total_by_status_view_method",
        COUNTER,
        labels,
        [LIVE[k] for k in labels],
        "Count of responses by status, view, method.",
    )
    d = MmapedDict(str(directory / "counter_999999.db"))
    d.write_value(key, value, 0.0)
    d.close()


class Gunicorn:
    """`gunicorn -w 2` with the project's config on a free port, against this test's database.
    The access log gives each request's worker pid."""

    def __init__(self, tmp_path: Path, metrics_dir: Path | None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.access_log = tmp_path / "access.log"
        env = {
            **os.environ,
            "DATABASE_URL": this_test_database_url(),
            "DB_CONN_MAX_AGE": "0",
            "REDIS_URL": settings.REDIS_URL,
            "PYTHONPATH": str(ROOT),
            "METRICS_TOKEN": METRICS_TOKEN,
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if metrics_dir is not None:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        self.stderr = (tmp_path / "gunicorn.err").open("w+")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn", "config.wsgi:application"),
                *("-c", "config/gunicorn.conf.py", "-w", "2", "--bind", f"127.0.0.1:{self.port}"),
                *("--access-logfile", str(self.access_log), "--access-logformat", "%(p)s %(U)s %(s)s"),
                # a loaded CI machine must not see a busy worker killed for a missed heartbeat
                # (its open connections would be reset mid-test)
                *("--timeout", "120"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        deadline = time.monotonic() + 60
        while not self.both_workers_up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                self.stderr.seek(0)
                pytest.fail(f"gunicorn did not start: {self.stderr.read()[-3000:]}")
            time.sleep(0.2)

    def both_workers_up(self) -> bool:
        return self.proc.poll() is None and "Booting worker" in self.log() and self.log().count("Booting worker") >= 2

    def log(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def pids(self, path: str) -> list[str]:
        if not self.access_log.exists():
            return []
        rows = [line.split() for line in self.access_log.read_text().splitlines()]
        return [r[0] for r in rows if len(r) == 3 and r[1] == path]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


@pytest.fixture
def gunicorn(db, tmp_path):
    servers = []

    def start(metrics_dir: Path | None) -> Gunicorn:
        servers.append(Gunicorn(tmp_path, metrics_dir))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def hit_until_both_workers_answered(server: Gunicorn, path: str, batch: int = 40, most: int = 2000) -> int:
    """GET `path` in concurrent batches until the access log shows two worker pids; how many were sent."""
    sent = 0
    with ThreadPoolExecutor(8) as pool:
        while sent < most:
            statuses = list(pool.map(lambda _: get(server.url + path)[0], range(batch)))
            assert statuses == [200] * batch
            sent += batch
            time.sleep(0.05)  # the access log is written after the response
            if len(set(server.pids(path))) >= 2:
                return sent
    pytest.fail(f"{sent} requests to {path} all reached one worker")


@pytest.mark.slow
def test_a_scrape_counts_every_workers_requests_and_a_stale_file_is_wiped(gunicorn, tmp_path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    plant_stale_counter(metrics_dir, 1000)

    server = gunicorn(metrics_dir)
    sent = hit_until_both_workers_answered(server, "/health/live")
    assert not (metrics_dir / "counter_999999.db").exists()

    seen = []
    for _ in range(30):
        status, text = get(server.url + "/metrics", SCRAPE)
        assert status == 200
        seen.append(sample(text, COUNTER, LIVE))
    # every scrape, whichever worker answered it, has the server's total (not one worker's share)
    assert seen == [float(sent)] * len(seen), (sent, seen)
    assert len(set(server.pids("/metrics"))) == 2, "the scrapes were answered by both workers"
    # the gauges read from the database at scrape time are still there
    assert sample(text, "workstream_outbox_backlog", {}) is not None
    # the workers wrote their files where they were told to
    assert len(list(metrics_dir.glob("counter_*.db"))) >= 2
    # and a scrape without the token, or with another one, gets nothing from any worker
    for headers in (None, {"Authorization": "Bearer " + secrets.token_urlsafe(32)}, {"Authorization": METRICS_TOKEN}):
        status, text = get(server.url + "/metrics", headers)
        assert status == 401 and "METRICS_TOKEN" in text and COUNTER not in text, (status, text[:300])


@pytest.mark.slow
def test_without_the_directory_gunicorn_makes_one_and_removes_it(gunicorn):
    server = gunicorn(None)
    sent = hit_until_both_workers_answered(server, "/health/live")
    seen = [sample(get(server.url + "/metrics", SCRAPE)[1], COUNTER, LIVE) for _ in range(20)]
    assert seen == [float(sent)] * len(seen), (sent, seen)
    made = [line for line in server.log().splitlines() if "Prometheus multiprocess directory" in line]
    assert made, server.log()
    directory = Path(made[0].rsplit(": ", 1)[1].strip())
    assert directory.is_dir()
    server.stop()
    assert not directory.exists()


def test_without_multiprocess_mode_metrics_serves_this_processs_registry(db, client, monkeypatch):
    """`make run` / runserver and the test client: the default registry, as before."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    before = sample(client.get("/metrics").content.decode(), COUNTER, LIVE) or 0.0
    assert client.get("/health/live").status_code == 200
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/plain")
    text = resp.content.decode()
    assert sample(text, COUNTER, LIVE) == before + 1
    assert sample(text, "workstream_outbox_backlog", {}) is not None
    assert "process_cpu_seconds_total" in text  # the default registry's process collector
