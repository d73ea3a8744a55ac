"""The TypeScript SDK (sdk-js/) in `make test`: its node tests run against the live server,
and its generated types are checked current against the OpenAPI document the code makes.

Needs Node 20+ and npm (the npm registry reachable for `npm ci`, which runs only when
sdk-js/node_modules is not already installed from the current package-lock.json).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.oidc_provider import AUDIENCE, ISSUER, Jwks, Key
from workitems.models import WorkItem

ROOT = Path(__file__).resolve().parents[2]
SDK_JS = ROOT / "sdk-js"
STAMP = SDK_JS / "node_modules" / ".workstream-lock-sha256"
REGENERATE = (
    "regenerate the types: DEBUG=true DATABASE_URL= .venv/bin/python manage.py spectacular --format openapi-json "
    "--file sdk-js/openapi.json && (cd sdk-js && npm ci && npm run generate), then commit sdk-js/src/schema.ts"
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: the TypeScript SDK's tests need Node.js 20+ with npm (README)")
    return path


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """sdk-js/node_modules as package-lock.json pins it: `npm ci` unless the stamp says it is
    installed from this very lock file. One process at a time (pytest-xdist workers share it)."""
    node = _tool("node")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.fail(f"node {version}: the TypeScript SDK needs Node.js 20 or later")
    npm = _tool("npm")
    digest = hashlib.sha256((SDK_JS / "package-lock.json").read_bytes()).hexdigest()
    lock_path = Path(tempfile.gettempdir()) / f"workstream-sdk-js-{hashlib.sha256(bytes(SDK_JS)).hexdigest()[:12]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (STAMP.exists() and STAMP.read_text() == digest):
            try:
                result = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                    cwd=SDK_JS,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
            except subprocess.TimeoutExpired:
                pytest.fail("npm ci in sdk-js/ took over 5 minutes: is the npm registry reachable?")
            if result.returncode != 0:
                registry = subprocess.run([npm, "config", "get", "registry"], capture_output=True, text=True).stdout
                pytest.fail(
                    f"npm ci in sdk-js/ failed (exit {result.returncode}); is the npm registry reachable "
                    f"({registry.strip() or 'registry.npmjs.org'})?\n{result.stderr[-3000:]}"
                )
            STAMP.write_text(digest)
    return SDK_JS / "node_modules"


@pytest.fixture(scope="session")
def built(node_modules, tmp_path_factory) -> Path:
    """The SDK and its tests compiled by tsc (which type-checks them) into a directory of this run's own."""
    out = tmp_path_factory.mktemp("sdk-js") / "dist"
    result = subprocess.run(
        [str(node_modules / ".bin" / "tsc"), "-p", "tsconfig.json", "--outDir", str(out)],
        cwd=SDK_JS,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"tsc failed in sdk-js/:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
    (out / "package.json").write_text(json.dumps({"type": "module"}))  # the output is ES modules
    return out


def run_node_tests(files: list[Path], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict[str, int]]:
    result = subprocess.run(
        [_tool("node"), "--test", "--test-reporter=tap", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    summary = re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", result.stdout, re.M)
    counts = {k: int(v) for k, v in summary}
    return result, counts


@pytest.fixture
def oidc_provider(ws_config):
    """A test identity provider on loopback whose tokens the server accepts (oidc: on)."""
    provider = Jwks()
    key = Key("EC")
    provider.publish(key)
    ws_config({"oidc": {"enabled": True, "issuer": ISSUER, "audience": AUDIENCE, "jwksUrl": provider.url}})
    yield key
    provider.close()


def test_the_client_against_the_live_server(
    built, live_server, svc, alice, queue, api_key_for, dropping_proxy, oidc_provider
):
    proxy = dropping_proxy(method="POST", path="/api/v1/workitems", drop=1)
    run = f"js-{uuid.uuid4().hex[:8]}"
    worker_token = {"preferred_username": alice.username, "roles": ["worker"]}
    env = {
        "WORKSTREAM_OIDC_TOKEN": oidc_provider.token(**worker_token),
        "WORKSTREAM_OIDC_EXPIRED": oidc_provider.token(**worker_token, exp=int(time.time()) - 120),
        "WORKSTREAM_URL": live_server.url,
        "WORKSTREAM_API_KEY": api_key_for(svc),
        "WORKSTREAM_WORKER": alice.username,
        "WORKSTREAM_QUEUE": queue.name,
        "WORKSTREAM_DROPPING_URL": proxy.url,
        "WORKSTREAM_RUN": run,
    }
    result, counts = run_node_tests([built / "test" / "live.test.js", built / "test" / "unit.test.js"], env)
    output = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, output
    assert counts.get("fail") == 0 and counts.get("cancelled") == 0 and counts.get("skipped") == 0, output
    assert counts.get("pass", 0) >= 15, output  # 6 live + 9 unit
    # What the server holds after them: the lost answer's retry and the repeated key made one item each.
    assert WorkItem.objects.filter(workflow_id=f"{run}-lost").count() == 1
    assert WorkItem.objects.filter(workflow_id=f"{run}-idem").count() == 1
    assert WorkItem.objects.filter(workflow_id=f"{run}-pages").count() == 5
    lost = [s for s in proxy.seen if s[0] == "POST" and s[1] == "/api/v1/workitems"]
    assert len(lost) == 2 and lost[0][2]["Idempotency-Key"] == lost[1][2]["Idempotency-Key"], lost


def test_the_node_tests_fail_without_a_server(built):
    """The live tests cannot pass vacuously: without the server's address they fail, naming it."""
    result, counts = run_node_tests([built / "test" / "live.test.js"], {"WORKSTREAM_URL": ""})
    assert result.returncode != 0 and counts.get("pass", 0) == 0
    assert "WORKSTREAM_URL is not set" in result.stdout + result.stderr


def test_the_generated_types_are_current(node_modules, tmp_path, db):
    """sdk-js/src/schema.ts is what openapi-typescript makes of the OpenAPI document of this code
    (the document `manage.py spectacular` writes)."""
    from drf_spectacular.renderers import OpenApiJsonRenderer
    from drf_spectacular.settings import spectacular_settings

    schema = spectacular_settings.DEFAULT_GENERATOR_CLASS().get_schema(request=None, public=True)
    (tmp_path / "openapi.json").write_bytes(OpenApiJsonRenderer().render(schema, renderer_context={}))
    result = subprocess.run(
        [str(node_modules / ".bin" / "openapi-typescript"), "openapi.json", "-o", "schema.ts"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = (tmp_path / "schema.ts").read_text()
    committed = (SDK_JS / "src" / "schema.ts").read_text()
    assert fresh == committed, f"sdk-js/src/schema.ts is not current with the API: {REGENERATE}"
