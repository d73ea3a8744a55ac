"""Every metric the Grafana dashboard and the Prometheus rules use is one the service exports:
the names are read from the PromQL of deploy/grafana/dashboards/*.json and
deploy/prometheus/workstream-rules.yml, and looked up in real scrapes of every process the
scrape configurations list: gunicorn (two workers, multiprocess mode, the scrape token), and
`manage.py relay_outbox`, `consume_commands` and `consume_notifications` with --metrics-port,
against this test's database and the real RabbitMQ (exchange and queues unique to the test).

A family counts as exported when the scrape declares it (# TYPE), samples or not: a labelled
counter has no sample before its first increment, a queue gauge none for a queue without the
figure. Only Prometheus's own `up` is not looked for.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from api.models import ServiceApiKey
from tests import factories
from tests.config.test_metrics_multiprocess import SCRAPE, Gunicorn, free_port
from tests.events.conftest import manage_py, subprocess_env

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "workstream-rules.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS_OWN = {"up"}
# PromQL words that are not metric names (functions, aggregations, keywords).
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left", "group_right",
    "rate", "irate", "increase", "delta", "idelta", "histogram_quantile", "absent", "absent_over_time",
    "and", "or", "unless", "bool", "offset", "clamp_min", "clamp_max", "topk", "bottomk", "time",
    "max_over_time", "min_over_time", "avg_over_time", "vector", "scalar",
}  # fmt: skip
PROCESSES = {"relay": "relay_outbox", "commands": "consume_commands", "notifications": "consume_notifications"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    words = set(re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*(?![\w.]*\s*\()", expr))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]|e\d*|inf|nan", w, re.I)}


def used_names() -> dict[str, set[str]]:
    """metric name → where it is used."""
    used: dict[str, set[str]] = {}
    for rule in (r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]):
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"rule {rule.get('alert') or rule.get('record')}")
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                for name in metric_names(target["expr"]):
                    used.setdefault(name, set()).add(f"{path.name}: {panel['title']}")
    return used


def exported(text: str) -> set[str]:
    """The sample names a scrape's families stand for (counter: _total, histogram: _bucket, …)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    out = set()
    for family in text_string_to_metric_families(text):
        out.add(family.name)
        out |= {family.name + s for s in suffixes.get(family.type, ())}
        out |= {s.name for s in family.samples}
    return out


def test_the_name_extraction_finds_what_an_expression_selects():
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(django_http_requests_latency_seconds_by_view_method_bucket"
        '{job="workstream-web", status=~"5.."}[5m]))) > 1 or absent(up{job="x"}) and max(a_b:c) / 2e3'
    )
    assert metric_names(expr) == {"django_http_requests_latency_seconds_by_view_method_bucket", "up", "a_b:c"}
    assert len(used_names()) >= 15


def scrape(url: str, headers: dict | None = None, *, timeout: float = 90) -> str:
    """GET `url` until it answers 200 (a process still starting refuses the connection)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = httpx.get(url, headers=headers, timeout=30)
            if resp.status_code == 200:
                return resp.text
            last = f"{resp.status_code}: {resp.text[:300]}"
        except httpx.TransportError as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer: {last}")
        time.sleep(0.3)


@pytest.mark.django_db(transaction=True)
def test_every_metric_of_the_dashboard_and_the_rules_is_exported(
    tmp_path,
    monkeypatch,
    events_config,
    names,
    cleanup_queues,
    svc,
    queue,
):
    _, config_path = events_config()
    cleanup_queues += [names[k] for k in ("commands", "dlq", "notifications", "notifications_dlq")]
    queue.max_open = 10
    queue.save(update_fields=["max_open"])
    _, key = ServiceApiKey.objects.create_key(name="metrics", user=svc)

    procs: dict[str, tuple[subprocess.Popen, int]] = {}
    env = subprocess_env(config_path)
    for name, command in PROCESSES.items():
        port = free_port()
        argv = [*manage_py(), command, "--metrics-port", str(port)]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs[name] = (proc, port)
    monkeypatch.setenv("WORKSTREAM_CONFIG", str(config_path))
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    web = Gunicorn(tmp_path, metrics_dir)
    try:
        created = httpx.post(
            web.url + "/api/v1/workitems",
            json=factories.item_body(queue),
            headers={"Authorization": f"Api-Key {key}"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        assert httpx.get(web.url + "/health/live", timeout=30).status_code == 200
        scrapes = {"web": scrape(web.url + "/metrics", SCRAPE)}
        for name, (proc, port) in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{PROCESSES[name]} exited: {proc.stderr.read()[-3000:]}")
            scrapes[name] = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        web.stop()
        for proc, _ in procs.values():
            proc.terminate()
        for proc, _ in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()

    everywhere = set().union(*(exported(text) for text in scrapes.values()))
    missing = {name: where for name, where in used_names().items() if name not in everywhere | PROMETHEUS_OWN}
    assert not missing, missing

    # the web process's scrape-time gauges see this test's queue and item (stats/metrics.py)
    web_samples = {
        (s.name, s.labels.get("queue")): s.value
        for f in text_string_to_metric_families(scrapes["web"])
        for s in f.samples
    }
    assert web_samples[("workstream_queue_depth", queue.name)] == 1
    assert web_samples[("workstream_queue_capacity", queue.name)] == 10
    assert web_samples[("workstream_queue_utilization_ratio", queue.name)] == 0.1
    assert web_samples[("workstream_outbox_backlog", None)] >= 0
    # each process exports what it does: the relay its publish counters, the consumers theirs
    assert "workstream_outbox_published_total" in exported(scrapes["relay"])
    assert "workstream_inbound_commands_total" in exported(scrapes["commands"])
    assert "workstream_notifications_total" in exported(scrapes["notifications"])
    assert "workitem_transitions_total" in exported(scrapes["web"])
