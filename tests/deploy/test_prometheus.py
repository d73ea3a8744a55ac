"""deploy/prometheus/ and deploy/grafana/: Prometheus's own promtool checks the scrape
configurations and the alert rules and runs the rules' unit tests (workstream-rules.test.yml);
the scrape targets are the ports the compose stack and the Kubernetes manifests really open; the
dashboard is provisioned against the datasource it names.

promtool is Debian's `prometheus` package (the Makefile's TEST_PACKAGES). The configurations
name the scrape token's file as mounted in production; promtool insists that it exists, so the
check runs on copies that point at an empty token file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.test_k8s import K8S, by_kind, render

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
CONFIGS = ("prometheus.yml", "prometheus-kubernetes.yml")
TOKEN_FILE = "/etc/prometheus/secrets/workstream-metrics-token"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if not binary:
        pytest.fail("promtool is missing: apt-get install prometheus (the Makefile's TEST_PACKAGES)")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def checkable(tmp_path) -> Path:
    """A copy of deploy/prometheus/ whose configurations name an existing (empty) token file."""
    token = tmp_path / "token"
    token.write_text("")
    for path in PROMETHEUS.iterdir():
        (tmp_path / path.name).write_text(path.read_text().replace(TOKEN_FILE, str(token)))
    return tmp_path


def load(name: str) -> dict:
    return yaml.safe_load((PROMETHEUS / name).read_text())


@pytest.mark.parametrize("config", CONFIGS)
def test_promtool_checks_the_configuration_and_its_rules(checkable, config):
    result = promtool("check", "config", config, cwd=checkable)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert TOKEN_FILE in (PROMETHEUS / config).read_text()


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", "workstream-rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_the_rules_unit_tests_pass_and_cover_every_alert():
    result = promtool("test", "rules", "workstream-rules.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = {r["alert"] for g in load("workstream-rules.yml")["groups"] for r in g["rules"]}
    tested = {t["alertname"] for case in load("workstream-rules.test.yml")["tests"] for t in case["alert_rule_test"]}
    assert tested == alerts
    doc = (ROOT / "docs" / "operations.md").read_text()
    for alert in alerts:  # every alert has its runbook entry
        assert f"### {alert}" in doc, alert


def test_promtool_rejects_a_broken_rule_and_a_failing_expectation(checkable):
    """The checks are not rubber stamps."""
    rules = checkable / "workstream-rules.yml"
    text = rules.read_text()
    rules.write_text(text.replace("> 60", "> > 60", 1))
    assert promtool("check", "rules", "workstream-rules.yml", cwd=checkable).returncode != 0
    rules.write_text(text.replace("> 60", "> 600", 1))  # valid, but the outbox-lag test expects 60 s
    result = promtool("test", "rules", "workstream-rules.test.yml", cwd=checkable)
    assert result.returncode != 0 and "WorkstreamOutboxLagHigh" in result.stdout + result.stderr


def test_the_compose_scrape_targets_are_the_compose_processes():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    jobs = {j["job_name"]: j for j in load("prometheus.yml")["scrape_configs"]}
    for job in jobs.values():
        ((target,),) = [c["targets"] for c in job["static_configs"]]
        host, port = target.split(":")
        command = compose[host]["command"]
        if host == "web":
            assert command[command.index("--bind") + 1] == f"0.0.0.0:{port}"
        else:
            assert command[command.index("--metrics-port") + 1] == port, job["job_name"]


def test_the_kubernetes_scrape_targets_are_the_headless_services_of_every_process():
    docs = render(K8S / "overlays" / "prod")
    services = by_kind(docs, "Service")
    deployments = by_kind(docs, "Deployment")
    jobs = {j["job_name"]: j for j in load("prometheus-kubernetes.yml")["scrape_configs"]}
    exporting = {
        n
        for n, d in deployments.items()
        if any(p["name"] != "grpc" for p in d["spec"]["template"]["spec"]["containers"][0].get("ports", []))
    }
    # web, relay and the two consumers; the worker, beat and the gRPC server export nothing
    assert set(jobs) == exporting
    for name, job in jobs.items():
        ((sd,),) = [job["dns_sd_configs"]]
        (fqdn,) = sd["names"]
        service_name, namespace, _ = fqdn.split(".")
        service = services[service_name]
        assert namespace == service["metadata"]["namespace"]
        assert service["spec"]["clusterIP"] == "None", "headless: DNS lists every pod"
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert sd["port"] in {p["containerPort"] for p in container["ports"]}
        assert (
            service["spec"]["selector"].items() <= deployments[name]["spec"]["template"]["metadata"]["labels"].items()
        )
        assert ("authorization" in job) == (name == "workstream-web")


def test_the_dashboard_is_provisioned_against_its_datasource():
    (datasource,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    (provider,) = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "workstream.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    dashboard = json.loads((GRAFANA / "dashboards" / "workstream.json").read_text())
    assert dashboard["uid"] == "workstream" and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("create", "complete", "distribution", "claim conflicts", "outbox backlog", "outbox age"):
        assert topic in titles, topic
    for topic in ("sla compliance", "queue depth", "request rate", "errors"):
        assert topic in titles, topic
